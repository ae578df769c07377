//! `relay --micro`: the per-viewer work of one 121 KB keyframe and the per-message work
//! of the channel, the way the code before and after a change does it, for instruction
//! counts under `valgrind --tool=callgrind` (load-independent; BENCHMARKS.md). Each
//! variant is its own `#[inline(never)]` function, so `callgrind_annotate --inclusive=yes`
//! gives its cost directly. `--micro --timed` also times the variants on this machine
//! (minimum and median of 40 rounds: the minimum is what the code costs without
//! interference), for what instruction counts do not show: cache misses.

use std::time::Duration;

use bytes::Bytes;
use latchkey_gateway::mp4::{self, Sample};
use latchkey_pairing::Session;
use latchkey_pairing::session::sealed_len_max;
use rand::rngs::OsRng;

use super::KEYFRAME_BYTES;

/// Viewers per keyframe.
const VIEWERS: usize = 100;
/// Bulk messages (64 KiB plaintext each) sealed and opened per variant.
const MESSAGES: usize = 1000;

fn session_pair() -> anyhow::Result<(Session, Session)> {
    Ok(latchkey_pairing::testing::session_pair(
        &mut OsRng,
        120,
        Duration::ZERO,
    )?)
}

fn keyframe() -> Sample {
    let mut data = vec![0u8; KEYFRAME_BYTES];
    data[..4].copy_from_slice(&(KEYFRAME_BYTES as u32 - 4).to_be_bytes());
    data[4] = 0x65;
    Sample {
        decode_time: 0,
        duration: 3000,
        is_sync: true,
        data: Bytes::from(data),
    }
}

/// Before: each viewer muxed the frame into its own copy (`media_segment`), and its
/// `NoiseStream` sealed it into a fresh, zeroed buffer (the old release policy gave the
/// write buffer back whenever a viewer's small read found nothing).
#[inline(never)]
fn keyframe_to_viewers_before(sessions: &mut [Session], frame: &Sample) -> usize {
    let mut total = 0;
    for s in sessions.iter_mut() {
        let segment = mp4::media_segment(1, std::slice::from_ref(frame)).unwrap_or_default();
        let mut out = Vec::new();
        if s.seal(Duration::ZERO, &segment, &mut out).is_ok() {
            total += out.len();
        }
    }
    total
}

/// After: the header is built per viewer and the frame's shared bytes are sealed from
/// where they are, into a reused, already-initialised buffer.
#[inline(never)]
fn keyframe_to_viewers_after(sessions: &mut [Session], frame: &Sample, out: &mut [u8]) -> usize {
    let mut total = 0;
    for s in sessions.iter_mut() {
        let head = mp4::media_segment_head(1, std::slice::from_ref(frame)).unwrap_or_default();
        let mut used = s.seal_into(Duration::ZERO, &head, out).unwrap_or(0);
        used += s
            .seal_into(
                Duration::ZERO,
                &frame.data,
                out.get_mut(used..).unwrap_or_default(),
            )
            .unwrap_or(0);
        total += used;
    }
    total
}

/// Before the buffer pool: each viewer's stream sealed into its own kept buffer, so one
/// keyframe to 100 viewers went through 100 distinct buffers (12 MB, through the cache).
#[inline(never)]
fn keyframe_to_viewers_own_buffers(
    sessions: &mut [Session],
    frame: &Sample,
    outs: &mut [Vec<u8>],
) -> usize {
    let mut total = 0;
    for (s, out) in sessions.iter_mut().zip(outs.iter_mut()) {
        total += seal_keyframe(s, frame, out);
    }
    total
}

/// With the pool: the streams take turns with the same (hot) buffer.
#[inline(never)]
fn keyframe_to_viewers_one_buffer(
    sessions: &mut [Session],
    frame: &Sample,
    out: &mut [u8],
) -> usize {
    let mut total = 0;
    for s in sessions.iter_mut() {
        total += seal_keyframe(s, frame, out);
    }
    total
}

fn seal_keyframe(s: &mut Session, frame: &Sample, out: &mut [u8]) -> usize {
    let head = mp4::media_segment_head(1, std::slice::from_ref(frame)).unwrap_or_default();
    let used = s.seal_into(Duration::ZERO, &head, out).unwrap_or(0);
    used + s
        .seal_into(
            Duration::ZERO,
            &frame.data,
            out.get_mut(used..).unwrap_or_default(),
        )
        .unwrap_or(0)
}

/// Before round four: `open_into` copied each message into a second buffer and opened
/// it there (snow's `read_message`); this does the same copy, then opens in place.
#[inline(never)]
fn channel_copy_then_open(a: &mut Session, b: &mut Session, plain: &[u8]) -> usize {
    let mut wire = vec![0u8; sealed_len_max(plain.len())];
    let mut opened = vec![0u8; plain.len() + 16];
    let mut total = 0;
    for _ in 0..MESSAGES {
        let n = a.seal_into(Duration::ZERO, plain, &mut wire).unwrap_or(0);
        let body = wire.get(2..n).unwrap_or_default();
        let copy = opened.get_mut(..body.len()).unwrap_or_default();
        copy.copy_from_slice(body);
        if let Ok(latchkey_pairing::Opened::Data(k)) = b.open_in_place(Duration::ZERO, copy) {
            total += k;
        }
    }
    total
}

/// Before: seal into a growing vector and open into a growing vector (each zeroed).
#[inline(never)]
fn channel_before(a: &mut Session, b: &mut Session, plain: &[u8]) -> usize {
    let (mut wire, mut opened) = (Vec::new(), Vec::new());
    let mut total = 0;
    for _ in 0..MESSAGES {
        wire.clear();
        opened.clear();
        let _ = a.seal(Duration::ZERO, plain, &mut wire);
        let _ = b.open(
            Duration::ZERO,
            wire.get(2..).unwrap_or_default(),
            &mut opened,
        );
        total += opened.len();
    }
    total
}

/// After: seal into a reused, initialised buffer and open there, in place, as
/// `NoiseStream` does (round four; before it, `open_into` copied the message into a
/// second buffer and opened it there, which is what this function did then).
#[inline(never)]
fn channel_after(a: &mut Session, b: &mut Session, plain: &[u8]) -> usize {
    let mut wire = vec![0u8; sealed_len_max(plain.len())];
    let mut total = 0;
    for _ in 0..MESSAGES {
        let n = a.seal_into(Duration::ZERO, plain, &mut wire).unwrap_or(0);
        if let Ok(latchkey_pairing::Opened::Data(k)) =
            b.open_in_place(Duration::ZERO, wire.get_mut(2..n).unwrap_or_default())
        {
            total += k;
        }
    }
    total
}

/// Minimum and median time of `f` over 40 rounds, in microseconds.
fn timed(mut f: impl FnMut() -> usize) -> (f64, f64) {
    let mut times: Vec<f64> = (0..40)
        .map(|_| {
            let start = std::time::Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2])
}

/// Runs every variant once; with `timed`, also times the ones round four compares.
pub fn run(timed_too: bool) -> anyhow::Result<()> {
    let frame = keyframe();
    let mut viewers = (0..VIEWERS)
        .map(|_| session_pair().map(|p| p.1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut out = vec![0u8; sealed_len_max(KEYFRAME_BYTES + 256)];
    let before = keyframe_to_viewers_before(&mut viewers, &frame);
    let after = keyframe_to_viewers_after(&mut viewers, &frame, &mut out);
    println!("keyframe to {VIEWERS} viewers: {before} bytes before, {after} after");
    let mut outs = vec![out.clone(); VIEWERS];
    let own = keyframe_to_viewers_own_buffers(&mut viewers, &frame, &mut outs);
    let one = keyframe_to_viewers_one_buffer(&mut viewers, &frame, &mut out);
    println!("keyframe to {VIEWERS} viewers: {own} bytes, own buffers; {one}, one buffer");
    let plain = vec![0x5au8; 65_510];
    let (mut a, mut b) = session_pair()?;
    let before = channel_before(&mut a, &mut b, &plain);
    let copied = channel_copy_then_open(&mut a, &mut b, &plain);
    let after = channel_after(&mut a, &mut b, &plain);
    println!(
        "channel, {MESSAGES} messages: {before} bytes before, {copied} copied, {after} in place"
    );
    if timed_too {
        let (min, med) = timed(|| keyframe_to_viewers_own_buffers(&mut viewers, &frame, &mut outs));
        println!("timed keyframe_own_buffers_us min {min:.0} median {med:.0}");
        let (min, med) = timed(|| keyframe_to_viewers_one_buffer(&mut viewers, &frame, &mut out));
        println!("timed keyframe_one_buffer_us min {min:.0} median {med:.0}");
        let (min, med) = timed(|| channel_copy_then_open(&mut a, &mut b, &plain));
        println!("timed channel_copy_then_open_us min {min:.0} median {med:.0}");
        let (min, med) = timed(|| channel_after(&mut a, &mut b, &plain));
        println!("timed channel_in_place_us min {min:.0} median {med:.0}");
    }
    Ok(())
}
