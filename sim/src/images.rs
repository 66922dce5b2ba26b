//! Crash points that check every legal post-crash image, shared by the workloads.
//!
//! Invariant: each image is an independent fork of the machine, restarted, with faults off and
//! the disk budget lifted, so what a check sees is the image itself, not new faults.

use stormhold::env::sim::SimEnv;

use crate::verdict::Violation;

/// The legal post-crash images of `env`'s pending state (at most `images_max`, sampled beyond
/// that), each ready to recover on; notes the enumeration in the trace.
pub fn prepared_images(env: &SimEnv, images_max: usize, op_index: u64) -> Vec<SimEnv> {
    let images = env.crash_images(images_max);
    let count = images.images.len();
    env.note(format!("op {op_index}: checking {count} crash images (exhaustive: {})", images.exhaustive));
    for image in &images.images {
        image.restart();
        image.set_faults_enabled(false);
        image.set_disk_bytes_max(None);
    }
    images.images
}

/// Names the image a violation was found in.
pub fn in_image(mut violation: Violation, index: usize, count: usize) -> Violation {
    violation.detail = format!("in crash image {}/{count}: {}", index + 1, violation.detail);
    violation
}
