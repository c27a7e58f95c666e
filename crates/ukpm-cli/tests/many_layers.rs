//! A package of thousands of layers (another tool's image) unpacks under a small limit on open
//! files: each layer is opened when its turn comes and closed after it.

mod common;

use common::UKPM;
use ukpm_test::{OciLayoutWriter, RawTar, TestEnv, require_program};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYERS: usize = 2000;

#[test]
fn thousands_of_layers_unpack_with_a_few_file_descriptors() {
    let prlimit = require_program("prlimit", "util-linux");
    let env = TestEnv::new();
    let mut layout = OciLayoutWriter::create(env.store());
    let layers: Vec<_> = (0..LAYERS)
        .map(|i| {
            let tar = RawTar::new()
                .file(&format!("layers/{i:04}"), 0o644, format!("{i}\n").as_bytes())
                .finish();
            layout.blob(LAYER_TAR, &tar)
        })
        .collect();
    let image = layout.image("amd64", "linux", &layers);
    layout.tag("unikraft.org/tall:latest", &image);
    layout.finish();

    // Far fewer descriptors than layers: the runtime, the store, a socket or two.
    let out = env
        .command(&prlimit)
        .args(["--nofile=64:64", UKPM, "--json", "unpack", "tall", "out"])
        .run();
    out.assert_success();
    assert_eq!(
        out.json()["files"].as_array().map(Vec::len),
        Some(LAYERS),
        "every layer's file is listed"
    );
    for i in [0, LAYERS / 2, LAYERS - 1] {
        assert_eq!(
            env.read(format!("out/layers/{i:04}")),
            format!("{i}\n").into_bytes()
        );
    }
}
