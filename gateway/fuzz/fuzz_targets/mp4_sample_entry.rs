//! Fuzz target: a camera-derived sample entry and frames through the fMP4 writer.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/mp4.rs"]
mod mp4;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (entry, frame) = data.split_at(data.len() / 2);
    let track = mp4::VideoTrack { sample_entry: entry.to_vec(), width: 640, height: 480, timescale: 90_000 };
    let _ = mp4::init_segment(&track);
    let sample = mp4::Sample { decode_time: u64::from(data.len() as u32), duration: 3000, is_sync: data.first() == Some(&1), data: bytes::Bytes::copy_from_slice(frame) };
    let _ = mp4::media_segment(1, &[sample]);
});
