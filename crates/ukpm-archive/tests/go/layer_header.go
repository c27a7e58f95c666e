// The program that produced the Go vectors of ukpm-archive's tar_layer tests (GO_HEADERS) and
// of the 10 GiB pack test: the archive/tar header KraftKit's oci/layer.go writes for a file of
// a given size and mode. The file is made sparse with Truncate, its header comes from
// tar.FileInfoHeader, then name, uid/gid, owner names and times are set as KraftKit sets them.
//
//	go run layer_header.go NAME SIZE MODE          # prints the header bytes as hex
//	go run layer_header.go NAME SIZE MODE full     # also the whole layer's digest and length
//
// Run with go1.19.8 (Debian 12's golang-go); not run by CI, whose tests hold the output.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"time"
)

func main() {
	name := os.Args[1]
	size, _ := strconv.ParseInt(os.Args[2], 10, 64)
	mode, _ := strconv.ParseInt(os.Args[3], 8, 64)
	f, err := os.CreateTemp("", "layer-header")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	if err := f.Truncate(size); err != nil {
		panic(err)
	}
	if err := f.Chmod(os.FileMode(mode)); err != nil {
		panic(err)
	}
	info, err := os.Stat(f.Name())
	if err != nil {
		panic(err)
	}
	hdr, err := tar.FileInfoHeader(info, "")
	if err != nil {
		panic(err)
	}
	hdr.Name = name
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}, time.Time{}
	rec := &recorder{h: sha256.New()}
	tw := tar.NewWriter(rec)
	if err := tw.WriteHeader(hdr); err != nil {
		panic(err)
	}
	fmt.Println(hex.EncodeToString(rec.head))
	if len(os.Args) > 4 {
		if _, err := io.Copy(tw, f); err != nil {
			panic(err)
		}
		if err := tw.Close(); err != nil {
			panic(err)
		}
		fmt.Printf("sha256:%x %d\n", rec.h.Sum(nil), rec.n)
	}
}

// recorder hashes everything and keeps what was written before the data (the headers).
type recorder struct {
	h    hash.Hash
	head []byte
	n    int64
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.n < 4096 {
		r.head = append(r.head, p...)
	}
	r.n += int64(len(p))
	return r.h.Write(p)
}
