//! Just enough ISO BMFF to cut the gateway's live.mp4 into HLS segments: top-level boxes
//! from a byte stream, the track timescale from `moov`, and a fragment's duration and
//! keyframe flag from its `moof`. Every length is checked; nothing here panics.

use bytes::{Buf as _, Bytes, BytesMut};

/// Largest box accepted from the stream (a fragment is one frame).
const MAX_BOX: usize = 16 << 20;
/// `trun` flags: data offset, first-sample flags, duration, size, flags present.
const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_FIRST_FLAGS: u32 = 0x4;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;
/// `sample_is_non_sync_sample` in sample flags.
const NON_SYNC: u32 = 0x0001_0000;

/// Splits a byte stream into top-level boxes.
#[derive(Debug, Default)]
pub struct BoxReader {
    buf: BytesMut,
}

/// A box that cannot be part of a live.mp4 stream.
#[derive(Debug, thiserror::Error)]
#[error("the live stream is not fragmented MP4 as expected: {0}")]
pub struct BadStream(pub &'static str);

impl BoxReader {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole box (type and all its bytes, header included), if it has arrived.
    pub fn next_box(&mut self) -> Result<Option<([u8; 4], Bytes)>, BadStream> {
        let Some(header) = self.buf.get(..8) else {
            return Ok(None);
        };
        let mut h = header;
        let size32 = h.get_u32();
        let mut kind = [0u8; 4];
        kind.copy_from_slice(h.get(..4).ok_or(BadStream("short header"))?);
        let size = match size32 {
            0 => return Err(BadStream("a box without an end")),
            1 => {
                let Some(mut large) = self.buf.get(8..16) else {
                    return Ok(None);
                };
                usize::try_from(large.get_u64()).map_err(|_| BadStream("a box too large"))?
            }
            n => usize::try_from(n).map_err(|_| BadStream("a box too large"))?,
        };
        if !(8..=MAX_BOX).contains(&size) {
            return Err(BadStream("a box of impossible size"));
        }
        if self.buf.len() < size {
            return Ok(None);
        }
        Ok(Some((kind, self.buf.split_to(size).freeze())))
    }
}

/// The children of a box body: (type, body).
fn children(mut body: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = usize::try_from(u32::from_be_bytes(body.get(..4)?.try_into().ok()?)).ok()?;
        let kind: [u8; 4] = body.get(4..8)?.try_into().ok()?;
        let inner = body.get(8..size)?;
        body = body.get(size..)?;
        Some((kind, inner))
    })
}

/// The body of the first descendant at `path` below a box body.
fn find<'a>(body: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let (_, inner) = children(body).find(|(k, _)| k == *first)?;
    if rest.is_empty() {
        Some(inner)
    } else {
        find(inner, rest)
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The video track's timescale from a whole `moov` box.
pub fn timescale(moov: &[u8]) -> Option<u32> {
    let mdhd = find(moov.get(8..)?, &[b"trak", b"mdia", b"mdhd"])?;
    // Full box: version(1) flags(3); v0: created(4) modified(4) timescale(4); v1: 8, 8, 4.
    let at = if *mdhd.first()? == 1 { 20 } else { 12 };
    u32_at(mdhd, at).filter(|t| *t > 0)
}

/// A fragment's duration in timescale ticks and whether it starts with a keyframe, from a
/// whole `moof` box.
pub fn fragment(moof: &[u8]) -> Option<(u64, bool)> {
    let traf = find(moof.get(8..)?, &[b"traf"])?;
    let tfhd = find(traf, &[b"tfhd"])?;
    let trun = find(traf, &[b"trun"])?;
    let flags = u32_at(trun, 0)? & 0x00ff_ffff;
    let tfhd_flags = u32_at(tfhd, 0)? & 0x00ff_ffff;
    // tfhd: track id, then optional base offset (8), description index (4), defaults.
    let mut at = 8usize;
    for (bit, len) in [(0x1u32, 8usize), (0x2, 4)] {
        if tfhd_flags & bit != 0 {
            at = at.checked_add(len)?;
        }
    }
    let default_duration = if tfhd_flags & 0x8 != 0 {
        u32_at(tfhd, at)
    } else {
        None
    };
    let count = u32_at(trun, 4)?;
    let mut pos = 8usize;
    if flags & TRUN_DATA_OFFSET != 0 {
        pos = pos.checked_add(4)?;
    }
    let mut first_flags = None;
    if flags & TRUN_FIRST_FLAGS != 0 {
        first_flags = u32_at(trun, pos);
        pos = pos.checked_add(4)?;
    }
    let mut total = 0u64;
    let mut keyframe = first_flags.map(|f| f & NON_SYNC == 0);
    for _ in 0..count.min(100_000) {
        if flags & TRUN_DURATION != 0 {
            total = total.saturating_add(u64::from(u32_at(trun, pos)?));
            pos = pos.checked_add(4)?;
        } else {
            total = total.saturating_add(u64::from(default_duration.unwrap_or(0)));
        }
        if flags & TRUN_SIZE != 0 {
            pos = pos.checked_add(4)?;
        }
        if flags & TRUN_FLAGS != 0 {
            let f = u32_at(trun, pos)?;
            keyframe.get_or_insert(f & NON_SYNC == 0);
            pos = pos.checked_add(4)?;
        }
        if flags & TRUN_CTO != 0 {
            pos = pos.checked_add(4)?;
        }
    }
    Some((total, keyframe.unwrap_or(false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn moof(durations: &[u32], first_sync: bool) -> Vec<u8> {
        let tfhd = boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]);
        let mut trun = vec![0, 0, 0x07, 0x01];
        trun.extend_from_slice(&(durations.len() as u32).to_be_bytes());
        trun.extend_from_slice(&0u32.to_be_bytes());
        for (i, d) in durations.iter().enumerate() {
            let sync = i == 0 && first_sync;
            trun.extend_from_slice(&d.to_be_bytes());
            trun.extend_from_slice(&10u32.to_be_bytes());
            trun.extend_from_slice(
                &(if sync { 0x0200_0000u32 } else { 0x0101_0000 }).to_be_bytes(),
            );
        }
        let traf = boxed(b"traf", &[tfhd, boxed(b"trun", &trun)].concat());
        boxed(b"moof", &traf)
    }

    #[test]
    fn boxes_split_across_reads_and_fragments_are_measured() {
        let m = moof(&[3000, 3000], true);
        let mut r = BoxReader::default();
        r.push(m.get(..5).unwrap());
        assert!(r.next_box().unwrap().is_none());
        r.push(m.get(5..).unwrap());
        let (kind, whole) = r.next_box().unwrap().unwrap();
        assert_eq!(&kind, b"moof");
        assert_eq!(fragment(&whole), Some((6000, true)));
        assert_eq!(fragment(&moof(&[3000], false)), Some((3000, false)));
        let mdhd = boxed(
            b"mdhd",
            &[&[0u8; 12][..], &90_000u32.to_be_bytes(), &[0; 4]].concat(),
        );
        let moov = boxed(b"moov", &boxed(b"trak", &boxed(b"mdia", &mdhd)));
        assert_eq!(timescale(&moov), Some(90_000));
    }

    #[test]
    fn hostile_boxes_are_refused_or_ignored_without_panics() {
        let mut r = BoxReader::default();
        r.push(&[0, 0, 0, 0, b'm', b'o', b'o', b'f']);
        assert!(r.next_box().is_err());
        let mut r = BoxReader::default();
        r.push(&[0xff, 0xff, 0xff, 0xff, b'm', b'd', b'a', b't']);
        assert!(r.next_box().is_err());
        assert_eq!(fragment(&boxed(b"moof", &[1, 2, 3])), None);
        assert_eq!(timescale(&[0; 3]), None);
        let mut truncated = moof(&[3000, 3000], true);
        truncated.truncate(truncated.len() - 6);
        let _ = fragment(&truncated);
    }
}
