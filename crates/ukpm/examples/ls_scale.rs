//! Writes a local store of many packages quickly, for `bench/ls-scale.sh` (issue 14: `ls` of
//! 10,000 local packages under 150 ms).
//!
//! `cargo run --release -p ukpm --example ls_scale -- STORE [COUNT]` writes COUNT (default
//! 10,000) packages as `ukpm pack` writes them (a kernel layer, a config and a manifest through
//! [`ManifestBuilder`], an index as [`merge_index`] makes it), each with its own blobs, under
//! `bench.local/appN:TAG` with tags that sort as versions; every other one carries a pull time,
//! as `ukpm pull` leaves it. The names go into `index.json` in one write under the store's lock
//! (one `pack` per package would rewrite a growing `index.json` ten thousand times).

use std::io::Write;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use ukpm::types::{Annotations, Descriptor, annotation, media_type, to_go_json, well_known};
use ukpm::{
    Architecture, ContentStore, Layer, LocalImageStore, ManifestBuilder, MergeStrategy, Plat, merge_index,
};

const TAGS: [&str; 4] = ["latest", "1.10", "1.9", "v2.0.0-rc.1"];
const CREATED: &str = "2026-01-01T00:00:00Z";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let root = args.next().ok_or("usage: ls_scale STORE [COUNT]")?;
    let count: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(write_store(root.into(), count))
}

async fn write_store(root: std::path::PathBuf, count: usize) -> Result<(), Error> {
    let store = Arc::new(LocalImageStore::new(&root));
    let kernels = tempfile::tempdir()?;
    let entries: Vec<(String, Descriptor)> = futures_util::stream::iter(0..count)
        .map(|i| package(store.clone(), kernels.path(), i))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let layout = ukpm::StoreError::BlobNotFound {
        digest: entries[0].1.digest,
    };
    let local = ukpm_store::LocalStore::open_existing(&root)?.ok_or(layout)?;
    local.update_refs(|table| {
        for (name, descriptor) in entries {
            table.set(&name, descriptor);
        }
        Ok::<_, ukpm::StoreError>(())
    })?;
    writeln!(std::io::stdout(), "{count} packages in {}", root.display())?;
    Ok(())
}

/// Packs package `i` and returns its ref name and index descriptor.
async fn package(
    store: Arc<LocalImageStore>,
    dir: &std::path::Path,
    i: usize,
) -> Result<(String, Descriptor), Error> {
    let (architecture, plat) = match i % 2 {
        0 => (Architecture::X86_64, Plat::Qemu),
        _ => (Architecture::Arm64, Plat::Fc),
    };
    let kernel = dir.join(format!("kernel-{i}"));
    fs_err::write(&kernel, format!("UNIKRAFT-KERNEL {i}\n"))?;
    let mut builder = ManifestBuilder::new(architecture, plat);
    builder.add_os_features([
        format!("CONFIG_ARCH_{}=y", architecture.as_str().to_uppercase()),
        "CONFIG_PLAT_KVM=y".to_string(),
        format!("CONFIG_UK_NAME=app{}", i / TAGS.len()),
    ]);
    builder.set_cmd(vec![format!("/app{i}")]);
    let name = format!("bench.local/app{}", i / TAGS.len());
    let reference = format!("{name}:{}", TAGS[i % TAGS.len()]);
    builder.set_annotation(annotation::CONTAINERD_IMAGE_NAME, &reference);
    builder.set_annotation(annotation::OCI_REF_NAME, &name);
    builder.set_annotation(annotation::NAME, &name);
    builder.set_annotation(annotation::OCI_CREATED, CREATED);
    let layer = Layer::from_file(&kernel, well_known::KERNEL, "kernel")?
        .with_annotation(annotation::KERNEL_PATH, well_known::KERNEL);
    builder.add_layer(store.as_ref(), layer).await?;
    let saved = builder.save(store.as_ref()).await?;
    fs_err::remove_file(&kernel)?;
    let mut index_annotations = Annotations::new();
    index_annotations.insert(annotation::CONTAINERD_IMAGE_NAME.into(), reference.clone());
    index_annotations.insert(annotation::OCI_REF_NAME.into(), name);
    let index = merge_index(None, saved.descriptor, MergeStrategy::Merge, index_annotations)?;
    let bytes = to_go_json(&index);
    let mut descriptor = Descriptor::for_bytes(media_type::IMAGE_INDEX, &bytes);
    store.put_bytes(bytes).await?;
    descriptor
        .annotations
        .insert(annotation::OCI_CREATED.into(), CREATED.into());
    if i % 2 == 1 {
        descriptor
            .annotations
            .insert(ukpm::PULLED_ANNOTATION.into(), CREATED.into());
    }
    Ok((reference, descriptor))
}
