//! Fragmented MP4 (fMP4 / CMAF-style) writer for live H.264 and H.265 camera streams.
//!
//! Hand-written because no small, well-kept crate muxes fMP4 from a ready-made sample
//! entry (the `avc1`/`hvc1` box that retina's `VideoParameters::mp4_sample_entry()`
//! returns); the general-purpose MP4 crates want to rebuild the codec config themselves
//! or pull in a large dependency tree.
//!
//! Public API:
//! - [`VideoTrack`]: the sample entry box plus dimensions and timescale (90000 for RTSP).
//! - [`init_segment`]: `ftyp` + `moov` (one video track, id 1, with `mvex`/`trex`).
//! - [`Sample`]: one access unit (4-byte length-prefixed NAL units) with its timing.
//! - [`media_segment`]: one `moof` + `mdat` fragment holding any number of samples, so
//!   one fragment per frame (low latency) and one fragment per GOP both work.
//!   [`media_segment_head`] is the same without the samples' data, which a live viewer
//!   sends from the shared frame instead of copying it.
//! - [`Mp4Error`]: why a segment could not be built.
//!
//! Both builders return `Result` rather than a bare `Vec<u8>`: a malformed sample entry
//! or an unrepresentable sample would otherwise produce a file that browsers reject
//! silently, which is much harder to debug than an error at the point of muxing.
//!
//! Samples carry no composition time offset, so streams with B-frames would be shown in
//! decode order; IP cameras practically never send B-frames over RTSP.

use bytes::Bytes;

/// Track id used for the single video track in every segment.
const TRACK_ID: u32 = 1;

/// `sample_depends_on = 2`: the sample does not depend on others (a sync sample).
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1` plus `sample_is_non_sync_sample = 1`.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// `tfhd` flag: offsets in `trun` are relative to the start of the `moof` box; required
/// by the `iso5` brand and the only mode MSE implementations handle reliably.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset, sample-duration, sample-size and sample-flags present.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400;

/// Bytes of a `VisualSampleEntry` before its child boxes (header included).
const VISUAL_SAMPLE_ENTRY_LEN: usize = 86;

/// Upper bound on samples per fragment so the `trun` data offset always fits in an i32
/// (12 bytes per sample entry plus a small fixed header).
const MAX_SAMPLES_PER_FRAGMENT: usize = 1 << 24;

/// Identity transform matrix shared by `mvhd` and `tkhd`.
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Description of the single video track of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// A complete `avc1`/`avc3`/`hvc1`/`hev1` box (header included), exactly as retina's
    /// `VideoParameters::mp4_sample_entry()` returns it.
    pub sample_entry: Vec<u8>,
    /// Display width in pixels.
    pub width: u16,
    /// Display height in pixels.
    pub height: u16,
    /// Media timescale in ticks per second (90000 for RTSP video).
    pub timescale: u32,
}

/// One access unit of the track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time in timescale units. Only the first sample's value is written (as the
    /// fragment's base decode time); later samples are placed by the durations.
    pub decode_time: u64,
    /// Duration in timescale units.
    pub duration: u32,
    /// True for IDR/IRAP pictures a decoder can start from.
    pub is_sync: bool,
    /// The picture as 4-byte big-endian length-prefixed NAL units.
    pub data: Bytes,
}

/// Why an MP4 segment could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mp4Error {
    /// The sample entry is not a well-formed visual sample entry box.
    #[error("mp4 init segment: invalid sample entry: {0}")]
    InvalidSampleEntry(&'static str),
    /// The timescale is zero, which makes every duration meaningless.
    #[error("mp4 init segment: timescale must be non-zero")]
    ZeroTimescale,
    /// A fragment needs at least one sample.
    #[error("mp4 media segment: no samples")]
    NoSamples,
    /// More samples than one fragment can address.
    #[error("mp4 media segment: too many samples ({0})")]
    TooManySamples(usize),
    /// A sample is larger than the 32-bit size field of `trun`.
    #[error("mp4 media segment: sample {index} too large ({len} bytes)")]
    SampleTooLarge {
        /// Position of the sample in the slice.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
}

/// Builds the initialization segment (`ftyp` + `moov`) for `track`.
pub fn init_segment(track: &VideoTrack) -> Result<Vec<u8>, Mp4Error> {
    check_sample_entry(&track.sample_entry)?;
    if track.timescale == 0 {
        return Err(Mp4Error::ZeroTimescale);
    }
    let mut out = Vec::with_capacity(track.sample_entry.len().saturating_add(700));
    write_box(&mut out, b"ftyp", |b| {
        b.extend_from_slice(b"iso5");
        b.extend_from_slice(&512u32.to_be_bytes());
        for brand in [b"iso5", b"iso6", b"mp41"] {
            b.extend_from_slice(brand);
        }
    });
    write_box(&mut out, b"moov", |b| {
        write_mvhd(b, track.timescale);
        write_box(b, b"trak", |b| {
            write_tkhd(b, track.width, track.height);
            write_box(b, b"mdia", |b| {
                write_full_box(b, b"mdhd", 0, 0, |b| {
                    put_u32s(b, &[0, 0, track.timescale, 0]); // created, modified, scale, duration
                    b.extend_from_slice(&0x55c4u16.to_be_bytes()); // language "und"
                    b.extend_from_slice(&0u16.to_be_bytes());
                });
                write_full_box(b, b"hdlr", 0, 0, |b| {
                    put_u32s(b, &[0]);
                    b.extend_from_slice(b"vide");
                    put_u32s(b, &[0, 0, 0]);
                    b.extend_from_slice(b"VideoHandler\0");
                });
                write_box(b, b"minf", |b| {
                    write_full_box(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                    write_box(b, b"dinf", |b| {
                        write_full_box(b, b"dref", 0, 0, |b| {
                            put_u32s(b, &[1]);
                            // Flag 1: media data is in this same file.
                            write_full_box(b, b"url ", 0, 1, |_| {});
                        });
                    });
                    write_box(b, b"stbl", |b| {
                        write_full_box(b, b"stsd", 0, 0, |b| {
                            put_u32s(b, &[1]);
                            b.extend_from_slice(&track.sample_entry);
                        });
                        // Sample tables stay empty: all samples live in fragments.
                        write_full_box(b, b"stts", 0, 0, |b| put_u32s(b, &[0]));
                        write_full_box(b, b"stsc", 0, 0, |b| put_u32s(b, &[0]));
                        write_full_box(b, b"stsz", 0, 0, |b| put_u32s(b, &[0, 0]));
                        write_full_box(b, b"stco", 0, 0, |b| put_u32s(b, &[0]));
                    });
                });
            });
        });
        write_box(b, b"mvex", |b| {
            write_full_box(b, b"trex", 0, 0, |b| {
                // track, sample description index, default duration, size, flags
                put_u32s(b, &[TRACK_ID, 1, 0, 0, 0]);
            });
        });
    });
    Ok(out)
}

/// Builds one fragment (`moof` + `mdat`) with sequence number `sequence` (start at 1 and
/// increment per fragment) holding `samples` in decode order.
pub fn media_segment(sequence: u32, samples: &[Sample]) -> Result<Vec<u8>, Mp4Error> {
    let mut out = media_segment_head(sequence, samples)?;
    for sample in samples {
        out.extend_from_slice(&sample.data);
    }
    Ok(out)
}

/// [`media_segment`] without the samples' data: the `moof` and the `mdat` header, to be
/// followed by each sample's `data` in order. A live viewer sends the frame's shared
/// bytes after it, so a frame is never copied per viewer.
pub fn media_segment_head(sequence: u32, samples: &[Sample]) -> Result<Vec<u8>, Mp4Error> {
    let first = samples.first().ok_or(Mp4Error::NoSamples)?;
    if samples.len() > MAX_SAMPLES_PER_FRAGMENT {
        return Err(Mp4Error::TooManySamples(samples.len()));
    }
    let sample_count =
        u32::try_from(samples.len()).map_err(|_| Mp4Error::TooManySamples(samples.len()))?;
    // Validate every size before writing anything so an error never leaves half a box.
    let mut sizes = Vec::with_capacity(samples.len());
    let mut payload_len: u64 = 0;
    for (index, sample) in samples.iter().enumerate() {
        let len = sample.data.len();
        let size = u32::try_from(len).map_err(|_| Mp4Error::SampleTooLarge { index, len })?;
        sizes.push(size);
        payload_len = payload_len.saturating_add(u64::from(size));
    }
    warn_on_timing_gaps(samples);

    // mdat needs a 64-bit size only beyond 4 GiB; decided up front because the trun data
    // offset depends on the mdat header length.
    let mdat_header_len: u64 = if payload_len.saturating_add(8) > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    // Reserve once for moof + mdat header; only a hint, so a failed reservation is
    // ignored rather than allowed to panic on an absurd total.
    let mut out = Vec::new();
    let _ = out.try_reserve(samples.len().saturating_mul(12).saturating_add(128));
    let mut data_offset_pos = None;
    write_box(&mut out, b"moof", |b| {
        write_full_box(b, b"mfhd", 0, 0, |b| put_u32s(b, &[sequence]));
        write_box(b, b"traf", |b| {
            write_full_box(b, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |b| {
                put_u32s(b, &[TRACK_ID]);
            });
            write_full_box(b, b"tfdt", 1, 0, |b| {
                b.extend_from_slice(&first.decode_time.to_be_bytes());
            });
            write_full_box(b, b"trun", 0, TRUN_FLAGS, |b| {
                put_u32s(b, &[sample_count]);
                data_offset_pos = Some(b.len());
                put_u32s(b, &[0]); // patched below once the moof length is known
                for (sample, size) in samples.iter().zip(&sizes) {
                    let flags = if sample.is_sync {
                        SYNC_SAMPLE_FLAGS
                    } else {
                        NON_SYNC_SAMPLE_FLAGS
                    };
                    put_u32s(b, &[sample.duration, *size, flags]);
                }
            });
        });
    });
    let moof_len = out.len() as u64;
    let data_offset = i32::try_from(moof_len.saturating_add(mdat_header_len))
        .map_err(|_| Mp4Error::TooManySamples(samples.len()))?;
    if let Some(slot) = data_offset_pos.and_then(|pos| out.get_mut(pos..pos.saturating_add(4))) {
        slot.copy_from_slice(&data_offset.to_be_bytes());
    }

    if mdat_header_len == 16 {
        put_u32s(&mut out, &[1]);
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(&payload_len.saturating_add(16).to_be_bytes());
    } else {
        // Fits: checked against u32::MAX when choosing the header length.
        let size = u32::try_from(payload_len.saturating_add(8)).unwrap_or(u32::MAX);
        put_u32s(&mut out, &[size]);
        out.extend_from_slice(b"mdat");
    }
    Ok(out)
}

/// Logs (but tolerates) decode times that disagree with the previous sample's duration:
/// only the first decode time is stored, so such gaps would silently shift playback.
fn warn_on_timing_gaps(samples: &[Sample]) {
    for pair in samples.windows(2) {
        if let [prev, next] = pair {
            let expected = prev.decode_time.checked_add(u64::from(prev.duration));
            if expected != Some(next.decode_time) {
                tracing::debug!(
                    prev = prev.decode_time,
                    duration = prev.duration,
                    next = next.decode_time,
                    "mp4 media segment: decode time does not follow previous duration"
                );
            }
        }
    }
}

/// Checks that `entry` is one complete visual sample entry box of a supported codec with
/// its decoder configuration box inside.
fn check_sample_entry(entry: &[u8]) -> Result<(), Mp4Error> {
    let header = entry
        .get(..8)
        .ok_or(Mp4Error::InvalidSampleEntry("shorter than a box header"))?;
    let (size, kind) = header.split_at(4);
    let size = read_u32(size).ok_or(Mp4Error::InvalidSampleEntry("unreadable size"))?;
    if usize::try_from(size).ok() != Some(entry.len()) {
        return Err(Mp4Error::InvalidSampleEntry(
            "box size does not match length",
        ));
    }
    let config_kind: &[u8; 4] = match kind {
        b"avc1" | b"avc3" => b"avcC",
        b"hvc1" | b"hev1" => b"hvcC",
        _ => return Err(Mp4Error::InvalidSampleEntry("not avc1/avc3/hvc1/hev1")),
    };
    let mut children = entry
        .get(VISUAL_SAMPLE_ENTRY_LEN..)
        .ok_or(Mp4Error::InvalidSampleEntry(
            "truncated visual sample entry",
        ))?;
    // Walk every child, not just up to the config box, so trailing garbage is caught.
    let mut found_config = false;
    while !children.is_empty() {
        let child_size = children
            .get(..4)
            .and_then(read_u32)
            .and_then(|s| usize::try_from(s).ok())
            .filter(|s| *s >= 8)
            .ok_or(Mp4Error::InvalidSampleEntry("bad child box size"))?;
        let child = children
            .get(..child_size)
            .ok_or(Mp4Error::InvalidSampleEntry("child box overruns entry"))?;
        found_config |= child.get(4..8) == Some(config_kind.as_slice());
        children = children.get(child_size..).unwrap_or_default();
    }
    if found_config {
        Ok(())
    } else {
        Err(Mp4Error::InvalidSampleEntry("missing avcC/hvcC box"))
    }
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    let array: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(array))
}

fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a box whose body `body` writes, then patches in the size. Bodies over 4 GiB
/// switch to the 64-bit `largesize` form instead of writing a wrapped size.
fn write_box(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    put_u32s(out, &[0]);
    out.extend_from_slice(kind);
    body(out);
    let size = out.len().saturating_sub(start);
    match u32::try_from(size) {
        Ok(size) => {
            if let Some(slot) = out.get_mut(start..start.saturating_add(4)) {
                slot.copy_from_slice(&size.to_be_bytes());
            }
        }
        Err(_) => {
            let large = (size as u64).saturating_add(8);
            if let Some(slot) = out.get_mut(start..start.saturating_add(4)) {
                slot.copy_from_slice(&1u32.to_be_bytes());
            }
            let at = start.saturating_add(8).min(out.len());
            out.splice(at..at, large.to_be_bytes());
        }
    }
}

/// Appends a full box (version + 24-bit flags before the body).
fn write_full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, kind, |b| {
        put_u32s(b, &[(u32::from(version) << 24) | (flags & 0x00ff_ffff)]);
        body(b);
    });
}

fn write_mvhd(out: &mut Vec<u8>, timescale: u32) {
    write_full_box(out, b"mvhd", 0, 0, |b| {
        put_u32s(b, &[0, 0, timescale, 0]); // created, modified, scale, duration (unknown)
        put_u32s(b, &[0x0001_0000]); // rate 1.0
        b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
        b.extend_from_slice(&[0; 10]);
        put_u32s(b, &UNITY_MATRIX);
        b.extend_from_slice(&[0; 24]); // pre_defined
        put_u32s(b, &[TRACK_ID.saturating_add(1)]); // next_track_ID
    });
}

fn write_tkhd(out: &mut Vec<u8>, width: u16, height: u16) {
    // Flags 3: track enabled and used in the presentation.
    write_full_box(out, b"tkhd", 0, 3, |b| {
        put_u32s(b, &[0, 0, TRACK_ID, 0, 0]); // created, modified, id, reserved, duration
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[0; 8]); // layer, alternate group, volume, reserved
        put_u32s(b, &UNITY_MATRIX);
        put_u32s(b, &[u32::from(width) << 16, u32::from(height) << 16]); // 16.16 fixed
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Walks a box list and checks every size nests exactly; returns top-level types.
    fn walk(mut data: &[u8]) -> Vec<String> {
        let mut kinds = Vec::new();
        while !data.is_empty() {
            let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            let (size, header) = if size == 1 {
                (
                    u64::from_be_bytes(data[8..16].try_into().unwrap()) as usize,
                    16,
                )
            } else {
                (size, 8)
            };
            assert!(size >= header && size <= data.len(), "bad box size {size}");
            let kind = String::from_utf8_lossy(&data[4..8]).into_owned();
            if matches!(
                kind.as_str(),
                "moov" | "trak" | "mdia" | "minf" | "dinf" | "stbl" | "mvex" | "moof" | "traf"
            ) {
                walk(&data[header..size]);
            }
            kinds.push(kind);
            data = &data[size..];
        }
        kinds
    }

    fn find_box<'a>(data: &'a [u8], path: &[&str]) -> Option<&'a [u8]> {
        let mut data = data;
        let (first, rest) = path.split_first()?;
        while data.len() >= 8 {
            let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            if &data[4..8] == first.as_bytes() {
                let body = &data[8..size];
                return if rest.is_empty() {
                    Some(body)
                } else {
                    find_box(body, rest)
                };
            }
            data = &data[size..];
        }
        None
    }

    fn visual_sample_entry(kind: &[u8; 4], width: u16, height: u16, config: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_box(&mut out, kind, |b| {
            b.extend_from_slice(&[0; 6]);
            b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
            b.extend_from_slice(&[0; 16]);
            b.extend_from_slice(&width.to_be_bytes());
            b.extend_from_slice(&height.to_be_bytes());
            put_u32s(b, &[0x0048_0000, 0x0048_0000, 0]);
            b.extend_from_slice(&1u16.to_be_bytes()); // frame_count
            b.extend_from_slice(&[0; 32]); // compressorname
            b.extend_from_slice(&0x0018u16.to_be_bytes());
            b.extend_from_slice(&0xffffu16.to_be_bytes());
            b.extend_from_slice(config);
        });
        out
    }

    fn fake_track() -> VideoTrack {
        let mut avcc = Vec::new();
        write_box(&mut avcc, b"avcC", |b| {
            b.extend_from_slice(&[1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0])
        });
        VideoTrack {
            sample_entry: visual_sample_entry(b"avc1", 320, 240, &avcc),
            width: 320,
            height: 240,
            timescale: 90_000,
        }
    }

    /// Splits an Annex B byte stream into NAL units (start codes removed).
    fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 3 <= data.len() {
            if data[i..i + 3] == [0, 0, 1] {
                starts.push(i + 3);
                i += 3;
            } else {
                i += 1;
            }
        }
        let mut nals = Vec::new();
        for (n, &start) in starts.iter().enumerate() {
            let mut end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
            // A 4-byte start code leaves a zero byte at the end of the previous NAL.
            while end > start && data[end - 1] == 0 {
                end -= 1;
            }
            nals.push(&data[start..end]);
        }
        nals
    }

    struct Codec {
        is_vcl: fn(&[u8]) -> bool,
        /// First slice of a picture (first_mb_in_slice == 0 / first_slice_segment flag).
        starts_picture: fn(&[u8]) -> bool,
        is_sync: fn(&[u8]) -> bool,
        /// Parameter sets and AUDs: carried by the sample entry, not the samples.
        is_out_of_band: fn(&[u8]) -> bool,
        /// Non-VCL units that trail their picture (H.265 suffix SEI).
        is_suffix: fn(&[u8]) -> bool,
    }

    const H264: Codec = Codec {
        is_vcl: |n| matches!(n[0] & 0x1f, 1..=5),
        starts_picture: |n| n[1] & 0x80 != 0,
        is_sync: |n| n[0] & 0x1f == 5,
        is_out_of_band: |n| matches!(n[0] & 0x1f, 7..=9),
        is_suffix: |_| false,
    };

    const H265: Codec = Codec {
        is_vcl: |n| (n[0] >> 1) & 0x3f < 32,
        starts_picture: |n| n[2] & 0x80 != 0,
        is_sync: |n| matches!((n[0] >> 1) & 0x3f, 16..=23),
        is_out_of_band: |n| matches!((n[0] >> 1) & 0x3f, 32..=35),
        is_suffix: |n| (n[0] >> 1) & 0x3f == 40,
    };

    /// Groups NAL units into access units, as a depacketizer would hand them over.
    fn access_units<'a>(nals: &[&'a [u8]], codec: &Codec) -> Vec<Vec<&'a [u8]>> {
        let mut aus: Vec<Vec<&[u8]>> = Vec::new();
        let mut current: Vec<&[u8]> = Vec::new();
        let mut has_vcl = false;
        for &nal in nals {
            let vcl = (codec.is_vcl)(nal);
            let starts_au = if vcl {
                (codec.starts_picture)(nal)
            } else {
                !(codec.is_suffix)(nal)
            };
            if has_vcl && starts_au {
                aus.push(std::mem::take(&mut current));
                has_vcl = false;
            }
            has_vcl |= vcl;
            current.push(nal);
        }
        if has_vcl {
            aus.push(current);
        }
        aus
    }

    fn to_sample(au: &[&[u8]], codec: &Codec, index: u64, duration: u32) -> Sample {
        let mut data = Vec::new();
        for nal in au.iter().filter(|n| !(codec.is_out_of_band)(n)) {
            data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            data.extend_from_slice(nal);
        }
        Sample {
            decode_time: index * u64::from(duration),
            duration,
            is_sync: au.iter().any(|n| (codec.is_vcl)(n) && (codec.is_sync)(n)),
            data: Bytes::from(data),
        }
    }

    fn avc1_entry(sps: &[u8], pps: &[u8], width: u16, height: u16) -> Vec<u8> {
        let mut avcc = Vec::new();
        write_box(&mut avcc, b"avcC", |b| {
            // version, profile, compatibility, level, 4-byte lengths, one SPS
            b.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xff, 0xe1]);
            b.extend_from_slice(&(sps.len() as u16).to_be_bytes());
            b.extend_from_slice(sps);
            b.push(1);
            b.extend_from_slice(&(pps.len() as u16).to_be_bytes());
            b.extend_from_slice(pps);
        });
        visual_sample_entry(b"avc1", width, height, &avcc)
    }

    fn strip_emulation_prevention(nal: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &byte in nal {
            if zeros >= 2 && byte == 3 {
                zeros = 0;
                continue;
            }
            zeros = if byte == 0 { zeros + 1 } else { 0 };
            out.push(byte);
        }
        out
    }

    fn hvc1_entry(vps: &[u8], sps: &[u8], pps: &[u8], width: u16, height: u16) -> Vec<u8> {
        // profile_tier_level starts after the 2-byte NAL header and one byte of ids.
        let rbsp = strip_emulation_prevention(sps);
        let ptl = &rbsp[3..15];
        let mut hvcc = Vec::new();
        write_box(&mut hvcc, b"hvcC", |b| {
            b.push(1);
            b.extend_from_slice(ptl); // profile byte, 4 compat bytes, 6 constraint, level
            b.extend_from_slice(&[0xf0, 0x00]); // min_spatial_segmentation_idc 0
            b.push(0xfc); // parallelismType 0
            b.push(0xfd); // chroma_format_idc 1 (4:2:0)
            b.push(0xf8); // bit depth luma 8
            b.push(0xf8); // bit depth chroma 8
            b.extend_from_slice(&[0, 0]); // avgFrameRate unknown
            b.push(0x0f); // 1 temporal layer, nested, lengthSizeMinusOne 3
            b.push(3);
            for (kind, nal) in [(32u8, vps), (33, sps), (34, pps)] {
                b.push(0x80 | kind); // array_completeness 1
                b.extend_from_slice(&1u16.to_be_bytes());
                b.extend_from_slice(&(nal.len() as u16).to_be_bytes());
                b.extend_from_slice(nal);
            }
        });
        visual_sample_entry(b"hvc1", width, height, &hvcc)
    }

    /// ffmpeg is a hard requirement of the test suite: CI installs it, so a missing
    /// binary is a failure, never a skip.
    fn have_ffmpeg() -> bool {
        let found = Command::new("ffprobe").arg("-version").output().is_ok()
            && Command::new("ffmpeg").arg("-version").output().is_ok();
        assert!(found, "ffmpeg/ffprobe missing: install the ffmpeg package");
        true
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("latchkey-mp4-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run_ok(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd:?} failed: {stderr}");
        assert!(stderr.trim().is_empty(), "{cmd:?} complained: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn encode_clip(dir: &Path, encoder_args: &[&str], file: &str) -> Vec<u8> {
        let path = dir.join(file);
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=15")
            .args(["-t", "2", "-pix_fmt", "yuv420p"])
            .args(encoder_args)
            .arg(&path);
        run_ok(&mut cmd);
        std::fs::read(path).unwrap()
    }

    /// Muxes `per_fragment` samples per fragment, writes the file and checks it with
    /// ffprobe/ffmpeg: codec, size, frame count and a clean decode. (Sync flags are
    /// checked byte-wise elsewhere: ffmpeg's parser re-derives keyframes from the slices.)
    fn mux_and_probe(
        dir: &Path,
        track: &VideoTrack,
        samples: &[Sample],
        codec_name: &str,
        per_fragment: usize,
    ) {
        let mut file = init_segment(track).unwrap();
        for (i, chunk) in samples.chunks(per_fragment).enumerate() {
            file.extend_from_slice(&media_segment(i as u32 + 1, chunk).unwrap());
        }
        walk(&file);
        let path = dir.join(format!("{codec_name}-{per_fragment}.mp4"));
        std::fs::write(&path, &file).unwrap();
        let probe = run_ok(
            Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", "v:0", "-show_streams"])
                .args(["-count_frames", "-of", "default=noprint_wrappers=1"])
                .arg(&path),
        );
        eprintln!("ffprobe {codec_name}: {}", probe.replace('\n', " "));
        assert!(
            probe.contains(&format!("codec_name={codec_name}\n")),
            "{probe}"
        );
        assert!(probe.contains("width=320\n"), "{probe}");
        assert!(probe.contains("height=240\n"), "{probe}");
        let frames = format!("nb_read_frames={}\n", samples.len());
        assert!(probe.contains(&frames), "{probe}");
        run_ok(
            Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&path)
                .args(["-f", "null", "-"]),
        );
    }

    #[test]
    fn h264_fragments_decode_with_ffmpeg() {
        if !have_ffmpeg() {
            return;
        }
        let dir = temp_dir("h264");
        let args = ["-c:v", "libx264", "-profile:v", "baseline", "-g", "15"];
        let args = [&args[..], &["-bsf:v", "h264_mp4toannexb", "-f", "h264"]].concat();
        let stream = encode_clip(&dir, &args, "clip.h264");
        let nals = split_annex_b(&stream);
        let sps = *nals.iter().find(|n| n[0] & 0x1f == 7).unwrap();
        let pps = *nals.iter().find(|n| n[0] & 0x1f == 8).unwrap();
        let aus = access_units(&nals, &H264);
        assert_eq!(aus.len(), 30);
        let samples: Vec<Sample> = (0u64..)
            .zip(&aus)
            .map(|(i, au)| to_sample(au, &H264, i, 6000))
            .collect();
        assert!(samples[0].is_sync && samples[15].is_sync && !samples[1].is_sync);
        let track = VideoTrack {
            sample_entry: avc1_entry(sps, pps, 320, 240),
            width: 320,
            height: 240,
            timescale: 90_000,
        };
        mux_and_probe(&dir, &track, &samples, "h264", 1);
        mux_and_probe(&dir, &track, &samples, "h264", 15);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn h265_fragments_decode_with_ffmpeg() {
        if !have_ffmpeg() {
            return;
        }
        let dir = temp_dir("h265");
        let params = "keyint=15:min-keyint=15:bframes=0:open-gop=0:log-level=error";
        let args = ["-c:v", "libx265", "-x265-params", params, "-f", "hevc"];
        let stream = encode_clip(&dir, &args, "clip.h265");
        let nals = split_annex_b(&stream);
        let find = |t: u8| *nals.iter().find(|n| (n[0] >> 1) & 0x3f == t).unwrap();
        let (vps, sps, pps) = (find(32), find(33), find(34));
        let aus = access_units(&nals, &H265);
        assert_eq!(aus.len(), 30);
        let samples: Vec<Sample> = (0u64..)
            .zip(&aus)
            .map(|(i, au)| to_sample(au, &H265, i, 6000))
            .collect();
        assert!(samples[0].is_sync && samples[15].is_sync && !samples[1].is_sync);
        let track = VideoTrack {
            sample_entry: hvc1_entry(vps, sps, pps, 320, 240),
            width: 320,
            height: 240,
            timescale: 90_000,
        };
        mux_and_probe(&dir, &track, &samples, "hevc", 1);
        mux_and_probe(&dir, &track, &samples, "hevc", 15);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn init_segment_layout() {
        let init = init_segment(&fake_track()).unwrap();
        assert_eq!(walk(&init), ["ftyp", "moov"]);
        let ftyp = find_box(&init, &["ftyp"]).unwrap();
        assert_eq!(ftyp, b"iso5\0\0\x02\0iso5iso6mp41");
        let hdlr = find_box(&init, &["moov", "trak", "mdia", "hdlr"]).unwrap();
        assert_eq!(&hdlr[8..12], b"vide");
        let stsd = find_box(&init, &["moov", "trak", "mdia", "minf", "stbl", "stsd"]).unwrap();
        assert_eq!(&stsd[8..], fake_track().sample_entry.as_slice());
        let trex = find_box(&init, &["moov", "mvex", "trex"]).unwrap();
        assert_eq!(&trex[4..8], &1u32.to_be_bytes());
        let tkhd = find_box(&init, &["moov", "trak", "tkhd"]).unwrap();
        assert_eq!(&tkhd[76..84], &[1, 64, 0, 0, 0, 240, 0, 0]);
    }

    #[test]
    fn media_segment_layout_and_data_offset() {
        let samples = [
            Sample {
                decode_time: 1 << 40,
                duration: 3000,
                is_sync: true,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            },
            Sample {
                decode_time: (1 << 40) + 3000,
                duration: 3000,
                is_sync: false,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            },
        ];
        let seg = media_segment(7, &samples).unwrap();
        assert_eq!(walk(&seg), ["moof", "mdat"]);
        // The head is the segment up to the samples' data, which follows it as is.
        let head = media_segment_head(7, &samples).unwrap();
        assert_eq!(seg.len(), head.len() + 6 + 5);
        assert_eq!(&seg[..head.len()], &head[..]);
        assert_eq!(
            &seg[head.len()..],
            &[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x41]
        );
        let mfhd = find_box(&seg, &["moof", "mfhd"]).unwrap();
        assert_eq!(&mfhd[4..], &7u32.to_be_bytes());
        let tfhd = find_box(&seg, &["moof", "traf", "tfhd"]).unwrap();
        assert_eq!(&tfhd[..4], &[0, 2, 0, 0]);
        let tfdt = find_box(&seg, &["moof", "traf", "tfdt"]).unwrap();
        assert_eq!(tfdt[0], 1);
        assert_eq!(&tfdt[4..], &(1u64 << 40).to_be_bytes());
        let trun = find_box(&seg, &["moof", "traf", "trun"]).unwrap();
        assert_eq!(&trun[4..8], &2u32.to_be_bytes());
        let offset = u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        assert_eq!(&seg[offset..], &[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x41]);
        assert_eq!(&trun[12..24], &[0, 0, 0x0b, 0xb8, 0, 0, 0, 6, 2, 0, 0, 0]);
        assert_eq!(&trun[24..36], &[0, 0, 0x0b, 0xb8, 0, 0, 0, 5, 1, 1, 0, 0]);
    }

    #[test]
    fn hostile_inputs_give_errors_or_valid_boxes() {
        let mut track = fake_track();
        let good = track.sample_entry.clone();
        let with_size = |mut v: Vec<u8>| {
            let len = v.len() as u32;
            v[..4].copy_from_slice(&len.to_be_bytes());
            v
        };
        let patched = |at: usize, value: u32| {
            let mut v = good.clone();
            v[at..at + 4].copy_from_slice(&value.to_be_bytes());
            v
        };
        let cases = [
            ("empty", vec![]),
            ("short header", vec![0; 7]),
            ("bare avc1 header", b"\0\0\0\x08avc1".to_vec()),
            ("unknown codec", b"\0\0\0\x08mp4v".to_vec()),
            ("size mismatch", good[..good.len() - 1].to_vec()),
            ("truncated", with_size(good[..good.len() - 1].to_vec())),
            ("trailing byte", with_size([&good[..], &[0]].concat())),
            ("child overruns", patched(VISUAL_SAMPLE_ENTRY_LEN, u32::MAX)),
            ("zero-size child", patched(VISUAL_SAMPLE_ENTRY_LEN, 0)),
            (
                "no avcC",
                with_size(good[..VISUAL_SAMPLE_ENTRY_LEN].to_vec()),
            ),
            (
                "hvc1 with avcC",
                with_size([&good[..4], b"hvc1", &good[8..]].concat()),
            ),
        ];
        for (name, entry) in cases {
            track.sample_entry = entry;
            assert!(
                matches!(init_segment(&track), Err(Mp4Error::InvalidSampleEntry(_))),
                "{name}"
            );
        }
        track.sample_entry = good;
        track.timescale = 0;
        assert_eq!(init_segment(&track), Err(Mp4Error::ZeroTimescale));
        track.timescale = 90_000;
        track.width = 0;
        track.height = u16::MAX;
        walk(&init_segment(&track).unwrap());

        assert_eq!(media_segment(1, &[]), Err(Mp4Error::NoSamples));
        // Empty and garbage payloads, extreme timestamps: still well-formed boxes.
        let odd = [
            Sample {
                decode_time: u64::MAX,
                duration: u32::MAX,
                is_sync: false,
                data: Bytes::new(),
            },
            Sample {
                decode_time: 0,
                duration: 0,
                is_sync: true,
                data: Bytes::from_static(&[0xff; 3]),
            },
        ];
        let seg = media_segment(u32::MAX, &odd).unwrap();
        assert_eq!(walk(&seg), ["moof", "mdat"]);
        assert!(seg.ends_with(&[0, 0, 0, 11, b'm', b'd', b'a', b't', 0xff, 0xff, 0xff]));
    }
}
