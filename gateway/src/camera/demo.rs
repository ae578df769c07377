//! Built-in demo camera: colour bars, a box that moves with the frame index and a clock,
//! rendered in pure Rust and encoded to JPEG, so the gateway works with no camera at all.
//!
//! Public API:
//! - [`DemoPattern::new`]`(width, height)` (default 640x360 via [`Default`]).
//! - [`DemoPattern::render_jpeg`]`(frame_index, clock_text)`: one baseline JPEG (quality
//!   75). The clock font is a hand-written 5x7 bitmap covering digits, ':', '-', '.' and
//!   space; other characters render as blanks.
//! - [`DemoError`]: invalid size or an encoder failure.
//! - [`open`]: the camera itself, a [`FrameStream`] of JPEGs at [`FPS`] showing UTC time.
//!
//! Cost: the static background is computed once and copied per frame; the rest is a few
//! rectangle fills, so the JPEG encoder dominates. Build jpeg-encoder with optimisation
//! in dev profiles (`[profile.dev.package.jpeg-encoder] opt-level = 3`) if debug builds
//! feel slow; the unit test prints the per-frame time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt as _;
use jpeg_encoder::{ColorType, Encoder, EncodingError};

use super::{Frame, FrameStream, SourceError};

/// Frames per second of the demo camera.
pub const FPS: u64 = 10;

/// The demo camera: renders a frame every 1/[`FPS`] s with the current UTC time.
/// Rendering runs on the blocking pool so a slow machine never stalls the runtime.
pub fn open() -> FrameStream {
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / FPS));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let state = (ticks, Some(DemoPattern::default()), 0u64);
    futures_util::stream::unfold(state, |(mut ticks, pattern, index)| async move {
        ticks.tick().await;
        let mut pattern = pattern?;
        let clock = utc_clock();
        let rendered = tokio::task::spawn_blocking(move || {
            let jpeg = pattern.render_jpeg(index, &clock);
            (pattern, jpeg)
        })
        .await;
        match rendered {
            Ok((pattern, Ok(jpeg))) => Some((
                Ok(Frame::Jpeg(Bytes::from(jpeg))),
                (ticks, Some(pattern), index.wrapping_add(1)),
            )),
            Ok((_, Err(e))) => Some((
                Err(SourceError::bad("demo camera", e.to_string())),
                (ticks, None, index),
            )),
            Err(e) => Some((
                Err(SourceError::bad("demo camera", format!("render task: {e}"))),
                (ticks, None, index),
            )),
        }
    })
    .boxed()
}

/// `HH:MM:SS UTC` from the system clock (no time zone database needed).
fn utc_clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// JPEG quality: good enough for a test pattern, small enough for many viewers.
const QUALITY: u8 = 75;

/// Largest accepted frame area; a bigger demo frame would only waste memory and CPU.
const MAX_PIXELS: usize = 4096 * 4096;

const BYTES_PER_PIXEL: usize = 3;

/// 75% SMPTE-style bars: white, yellow, cyan, green, magenta, red, blue.
const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];
const BAND: [u8; 3] = [24, 24, 24];
const MOVER: [u8; 3] = [255, 255, 255];
const CLOCK_BG: [u8; 3] = [0, 0, 0];
const CLOCK_FG: [u8; 3] = [255, 255, 255];

const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;

/// Why a demo frame could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Zero-sized or absurdly large frame.
    #[error("demo render: invalid frame size {width}x{height}")]
    InvalidSize {
        /// Requested width.
        width: u16,
        /// Requested height.
        height: u16,
    },
    /// The JPEG encoder rejected the frame.
    #[error("demo render: jpeg encode failed: {0}")]
    Encode(#[from] EncodingError),
}

/// Renderer for the demo camera; keeps its buffers between frames.
#[derive(Debug, Clone)]
pub struct DemoPattern {
    width: u16,
    height: u16,
    /// Static colour bars and band, built on first render.
    background: Vec<u8>,
    /// Scratch RGB frame reused across renders.
    frame: Vec<u8>,
}

impl Default for DemoPattern {
    fn default() -> Self {
        Self::new(640, 360)
    }
}

impl DemoPattern {
    /// Creates a renderer for `width` x `height` frames (validated on first render).
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            width,
            height,
            background: Vec::new(),
            frame: Vec::new(),
        }
    }

    /// Renders frame `frame_index` with `clock_text` (e.g. "20:49:22") as a JPEG.
    pub fn render_jpeg(
        &mut self,
        frame_index: u64,
        clock_text: &str,
    ) -> Result<Vec<u8>, DemoError> {
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let pixels = w.saturating_mul(h);
        if pixels == 0 || pixels > MAX_PIXELS {
            return Err(DemoError::InvalidSize {
                width: self.width,
                height: self.height,
            });
        }
        if self.background.is_empty() {
            self.background = background(w, h);
        }
        self.frame.clear();
        self.frame.extend_from_slice(&self.background);
        let mut canvas = Canvas {
            data: &mut self.frame,
            width: w,
            height: h,
        };

        // Moving box in the bottom band: its position is a pure function of the index so
        // viewers can tell frames apart and spot stalls.
        let band_top = h.saturating_mul(3) / 4;
        let band_h = h.saturating_sub(band_top);
        let size = (band_h.saturating_mul(3) / 5).max(1);
        let travel = w.saturating_sub(size).saturating_add(1);
        let step = (w / 160).max(1) as u64;
        let x = usize::try_from(frame_index.wrapping_mul(step) % travel as u64).unwrap_or(0);
        let y = band_top.saturating_add(band_h.saturating_sub(size) / 2);
        canvas.fill_rect(x, y, size, size, MOVER);

        draw_clock(&mut canvas, clock_text);

        let mut out = Vec::with_capacity(pixels / 8);
        Encoder::new(&mut out, QUALITY).encode(
            &self.frame,
            self.width,
            self.height,
            ColorType::Rgb,
        )?;
        Ok(out)
    }
}

/// RGB24 image being drawn on; every write is clipped to the image.
struct Canvas<'a> {
    data: &'a mut [u8],
    width: usize,
    height: usize,
}

impl Canvas<'_> {
    fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, color: [u8; 3]) {
        let x_end = x.saturating_add(w).min(self.width);
        let y_end = y.saturating_add(h).min(self.height);
        if x >= x_end || y >= y_end {
            return;
        }
        let stride = self.width.saturating_mul(BYTES_PER_PIXEL);
        for row in self.data.chunks_exact_mut(stride).skip(y).take(y_end - y) {
            let span = row.get_mut(x * BYTES_PER_PIXEL..x_end * BYTES_PER_PIXEL);
            for pixel in span
                .into_iter()
                .flat_map(|s| s.chunks_exact_mut(BYTES_PER_PIXEL))
            {
                pixel.copy_from_slice(&color);
            }
        }
    }
}

fn background(w: usize, h: usize) -> Vec<u8> {
    let mut data = vec![0; w.saturating_mul(h).saturating_mul(BYTES_PER_PIXEL)];
    let mut canvas = Canvas {
        data: &mut data,
        width: w,
        height: h,
    };
    let bars_h = h.saturating_mul(3) / 4;
    for (i, color) in BARS.iter().enumerate() {
        let x0 = w.saturating_mul(i) / BARS.len();
        let x1 = w.saturating_mul(i.saturating_add(1)) / BARS.len();
        canvas.fill_rect(x0, 0, x1.saturating_sub(x0), bars_h, *color);
    }
    canvas.fill_rect(0, bars_h, w, h.saturating_sub(bars_h), BAND);
    data
}

/// Draws `text` centred in the upper part of the frame on a black plate.
fn draw_clock(canvas: &mut Canvas<'_>, text: &str) {
    let scale = (canvas.height / 45).max(1);
    let advance = (GLYPH_W + 1) * scale;
    let chars = text.chars().count().min(64);
    let pad = scale * 2;
    let text_w = advance.saturating_mul(chars).saturating_sub(scale);
    let plate_w = text_w.saturating_add(pad * 2);
    let plate_h = GLYPH_H * scale + pad * 2;
    let plate_x = canvas.width.saturating_sub(plate_w) / 2;
    let plate_y = canvas.height / 8;
    canvas.fill_rect(plate_x, plate_y, plate_w, plate_h, CLOCK_BG);
    for (i, c) in text.chars().take(chars).enumerate() {
        let glyph_x = plate_x + pad + i.saturating_mul(advance);
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (0x10 >> col) != 0 {
                    let px = glyph_x + col * scale;
                    let py = plate_y + pad + row * scale;
                    canvas.fill_rect(px, py, scale, scale, CLOCK_FG);
                }
            }
        }
    }
}

/// 5x7 bitmap rows (bit 4 = leftmost column).
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        _ => [0; GLYPH_H],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    #[test]
    fn renders_valid_distinct_jpegs() {
        let mut demo = DemoPattern::default();
        let started = Instant::now();
        let a = demo.render_jpeg(0, "20:49:22").unwrap();
        eprintln!(
            "demo frame 640x360: {:?}, {} bytes",
            started.elapsed(),
            a.len()
        );
        let b = demo.render_jpeg(1, "20:49:22").unwrap();
        let c = demo.render_jpeg(0, "20:49:23").unwrap();
        for jpeg in [&a, &b, &c] {
            assert!(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]));
        }
        assert_ne!(a, b, "frame index must move the box");
        assert_ne!(a, c, "clock text must be drawn");
        assert_eq!(a, demo.render_jpeg(0, "20:49:22").unwrap(), "deterministic");
    }

    #[test]
    fn ffprobe_reads_demo_frame() {
        let jpeg = DemoPattern::new(640, 360)
            .render_jpeg(42, "12:34:56")
            .unwrap();
        let path = std::env::temp_dir().join(format!("latchkey-demo-{}.jpg", std::process::id()));
        std::fs::write(&path, &jpeg).unwrap();
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("ffprobe demo: {}", stdout.trim());
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        assert_eq!(stdout.trim(), "mjpeg,640,360");
    }

    #[test]
    fn odd_sizes_and_text_never_panic() {
        for (w, h) in [(1, 1), (2, 3), (17, 9), (640, 1), (1, 360), (320, 240)] {
            let mut demo = DemoPattern::new(w, h);
            for index in [0, 1, 999, u64::MAX] {
                let jpeg = demo
                    .render_jpeg(index, "99:99:99 ünïcode %$ 1234567890-.")
                    .unwrap();
                assert!(jpeg.starts_with(&[0xff, 0xd8]));
            }
        }
        let long = "8".repeat(10_000);
        assert!(DemoPattern::new(64, 64).render_jpeg(3, &long).is_ok());
        assert!(matches!(
            DemoPattern::new(0, 360).render_jpeg(0, ""),
            Err(DemoError::InvalidSize { .. })
        ));
        assert!(matches!(
            DemoPattern::new(u16::MAX, u16::MAX).render_jpeg(0, ""),
            Err(DemoError::InvalidSize { .. })
        ));
    }
}
