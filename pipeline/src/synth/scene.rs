//! One synthetic video: bouncing objects over a drifting texture, and their impact sounds.
//!
//! Physics is stepped at the video's own frame times, so an impact happens *on* a frame: the
//! object is drawn touching the floor as a white flash in that frame, and its sound starts at
//! that frame's timestamp, rounded to the nearest audio sample. Audio-visual synchrony is
//! therefore exact by construction, which is what lets tests find alignment bugs downstream.
//!
//! Time direction shows in both modalities: bounces lose energy (each peak is lower than the
//! last) and every sound has a sharp attack and an exponential decay.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::class::{ClassStyle, CLASSES};

/// A pixel whose three channels are all at least this bright belongs to a flash. The
/// background and every class colour stay below it in at least one channel.
pub const FLASH_THRESHOLD: u8 = 230;

/// Time base used for variable-frame-rate timestamps (the MPEG-TS/MP4 90 kHz clock).
pub const VFR_TIME_BASE: u32 = 90_000;

/// Everything that determines one video's content. Same scenario, same pixels and samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Seeds the scene's objects and noise.
    pub seed: u64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Nominal frame rate. With `variable_frame_rate` the frame intervals jitter around it.
    pub fps: u32,
    /// Irregular frame times (a jittered clock).
    pub variable_frame_rate: bool,
    /// Length, seconds.
    pub duration_s: f64,
    /// Audio rate, Hz.
    pub sample_rate: u32,
    /// Audio channels.
    pub channels: u16,
    /// The class whose objects dominate the video: its label.
    pub label: usize,
    /// How many classes are in play (distractor objects are drawn from these).
    pub classes: usize,
    /// Object radius relative to the default (5-8% of the frame height). Larger objects keep
    /// the audio-visual signal visible in the tiny frames a CPU-sized model trains on.
    #[serde(default = "unit_scale")]
    pub object_scale: f32,
}

fn unit_scale() -> f32 {
    1.0
}

/// An object hitting the floor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    /// The frame on which the object touches the floor and flashes.
    pub frame: usize,
    /// That frame's timestamp, seconds; the sound starts here.
    pub time_s: f64,
    /// The class of the object that struck.
    pub class: usize,
    /// Impact speed relative to a drop from mid-height, clamped to [0, 1.5]: sets loudness.
    pub strength: f32,
    /// Horizontal position in [0, 1] (pans stereo audio).
    pub x: f32,
}

#[derive(Clone, Copy, Debug)]
struct Placed {
    class: usize,
    x: f32,
    y: f32,
    r: f32,
    flash: bool,
}

struct Body {
    class: usize,
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    r: f32,
    respawn: bool,
}

/// A fully simulated video, ready to render frame by frame.
pub struct Scene {
    scenario: Scenario,
    frame_times: Vec<f64>,
    placed: Vec<Vec<Placed>>,
    impacts: Vec<Impact>,
    texture: Texture,
    tint: [f32; 3],
    scroll_px_per_s: f32,
}

impl Scene {
    /// Simulates the whole video. Cheap: rendering happens later, one frame at a time.
    pub fn new(scenario: &Scenario) -> Scene {
        assert!(scenario.label < scenario.classes && scenario.classes <= CLASSES.len());
        assert!(
            (0.25..=4.0).contains(&scenario.object_scale),
            "object scale {} outside 0.25..=4",
            scenario.object_scale
        );
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let frame_times = frame_times(scenario, &mut rng);
        let (w, h) = (scenario.width as f32, scenario.height as f32);

        let n_objects = rng.random_range(2..=4usize);
        let mut bodies: Vec<Body> = (0..n_objects)
            .map(|k| {
                // Two objects: both of the label's class. More: all but one, which is a
                // distractor from another class, so the label is the clear majority.
                let class = if k == 0 || n_objects == 2 || scenario.classes == 1 {
                    scenario.label
                } else if k == n_objects - 1 {
                    (scenario.label + rng.random_range(1..scenario.classes)) % scenario.classes
                } else {
                    scenario.label
                };
                let r = h * rng.random_range(0.05..0.08f32) * scenario.object_scale;
                Body {
                    class,
                    x: rng.random_range(r..w - r),
                    y: rng.random_range(r..h * 0.5),
                    vx: rng.random_range(-0.2..0.2f32) * w,
                    vy: rng.random_range(-0.3..0.1f32) * h,
                    r,
                    respawn: false,
                }
            })
            .collect();

        let gravity = 2.2 * h;
        let v_ref = (gravity * h).sqrt();
        let restitution = 0.78;
        let mut placed = Vec::with_capacity(frame_times.len());
        let mut impacts = Vec::new();
        for (j, &t) in frame_times.iter().enumerate() {
            let dt = if j == 0 {
                0.0
            } else {
                (t - frame_times[j - 1]) as f32
            };
            let mut frame = Vec::with_capacity(bodies.len());
            for b in bodies.iter_mut() {
                if b.respawn {
                    b.respawn = false;
                    b.y = b.r;
                    b.vy = 0.0;
                    b.x = rng.random_range(b.r..w - b.r);
                    b.vx = rng.random_range(-0.2..0.2f32) * w;
                }
                b.vy += gravity * dt;
                b.x += b.vx * dt;
                b.y += b.vy * dt;
                if b.x < b.r {
                    b.x = 2.0 * b.r - b.x;
                    b.vx = -b.vx;
                } else if b.x > w - b.r {
                    b.x = 2.0 * (w - b.r) - b.x;
                    b.vx = -b.vx;
                }
                let floor = h - b.r - 2.0;
                let mut flash = false;
                if b.y >= floor && b.vy > 0.0 {
                    impacts.push(Impact {
                        frame: j,
                        time_s: t,
                        class: b.class,
                        strength: (b.vy / v_ref).clamp(0.0, 1.5),
                        x: b.x / w,
                    });
                    flash = true;
                    b.y = floor;
                    b.vy = -b.vy * restitution;
                    // A body that barely bounces any more is dropped again from the top.
                    b.respawn = b.vy.abs() < 0.35 * v_ref;
                }
                frame.push(Placed {
                    class: b.class,
                    x: b.x,
                    y: b.y,
                    r: b.r,
                    flash,
                });
            }
            placed.push(frame);
        }

        let texture = Texture::new(scenario.width, scenario.height, &mut rng);
        let tint = [
            rng.random_range(0.6..1.0f32),
            rng.random_range(0.6..1.0f32),
            rng.random_range(0.6..1.0f32),
        ];
        let scroll_px_per_s = rng.random_range(6.0..20.0f32);
        Scene {
            scenario: scenario.clone(),
            frame_times,
            placed,
            impacts,
            texture,
            tint,
            scroll_px_per_s,
        }
    }

    /// What it was built from.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Presentation time of every frame, seconds, strictly increasing from 0.
    pub fn frame_times(&self) -> &[f64] {
        &self.frame_times
    }

    /// Every impact, in time order.
    pub fn impacts(&self) -> &[Impact] {
        &self.impacts
    }

    /// Draws frame `j` as packed RGB24, `width * height * 3` bytes.
    pub fn render_frame(&self, j: usize, out: &mut [u8]) {
        let (w, h) = (self.scenario.width as usize, self.scenario.height as usize);
        assert_eq!(out.len(), w * h * 3, "frame buffer size");
        let t = self.frame_times[j];
        let offset = (t * self.scroll_px_per_s as f64) as usize;
        let mut noise = NoiseStream::new(self.scenario.seed ^ (j as u64).wrapping_mul(0x9E37_79B9));
        for y in 0..h {
            let row = &mut out[y * w * 3..(y + 1) * w * 3];
            for x in 0..w {
                let v = self.texture.at(x + offset, y);
                // Background spans ~50..185 and noise +-6: never reaches a flash's white.
                let level = 50.0 + 135.0 * v;
                for c in 0..3 {
                    let value = level * self.tint[c] + noise.next_centered(6.0);
                    row[x * 3 + c] = value.clamp(0.0, 255.0) as u8;
                }
            }
        }
        // Flashes last, so another object can never hide one.
        for flash in [false, true] {
            for p in self.placed[j].iter().filter(|p| p.flash == flash) {
                draw_object(out, w, h, p, &CLASSES[p.class]);
            }
        }
    }

    /// Renders the soundtrack: interleaved f32 in [-1, 1], `channels` per sample, covering
    /// `duration_s` at the scenario's sample rate.
    pub fn render_audio(&self) -> Vec<f32> {
        let sr = self.scenario.sample_rate as f64;
        let n = (self.scenario.duration_s * sr).ceil() as usize;
        let ch = self.scenario.channels as usize;
        let mut mono_noise = vec![0f32; n];
        let mut noise = NoiseStream::new(self.scenario.seed.wrapping_add(0xA0D1_0000));
        let mut lp = 0f32;
        for s in mono_noise.iter_mut() {
            // One-pole low-pass: a soft hiss rather than harsh white noise.
            lp += 0.3 * (noise.next_centered(1.0) - lp);
            *s = 0.03 * lp;
        }
        let mut out = vec![0f32; n * ch];
        for (i, s) in mono_noise.iter().enumerate() {
            for c in 0..ch {
                out[i * ch + c] = *s;
            }
        }
        for imp in &self.impacts {
            let style = &CLASSES[imp.class];
            let start = (imp.time_s * sr).round() as usize;
            let len = ((style.decay_s * 6.0) as f64 * sr) as usize;
            let amp = 0.2 + 0.3 * imp.strength.min(1.0);
            let gains: Vec<f32> = if ch == 1 {
                vec![1.0]
            } else {
                let p = imp.x.clamp(0.0, 1.0) * std::f32::consts::FRAC_PI_2;
                (0..ch)
                    .map(|c| if c % 2 == 0 { p.cos() } else { p.sin() } * 1.2)
                    .collect()
            };
            let wsum: f32 = style.harmonics.iter().sum();
            let mut burst = NoiseStream::new(self.scenario.seed ^ (start as u64) << 1);
            for k in 0..len.min(n.saturating_sub(start)) {
                let t = k as f32 / sr as f32;
                let env = (t / 0.002).min(1.0) * (-t / style.decay_s).exp();
                let mut tone = 0f32;
                for (hn, wgt) in style.harmonics.iter().enumerate() {
                    if *wgt > 0.0 {
                        let f = style.pitch_hz * (hn + 1) as f32;
                        tone += wgt * (std::f32::consts::TAU * f * t).sin();
                    }
                }
                let click = burst.next_centered(1.0) * (-t / 0.004).exp();
                let v = amp * (env * tone / wsum + 0.5 * click);
                for (c, g) in gains.iter().enumerate() {
                    out[(start + k) * ch + c] += v * g;
                }
            }
        }
        for s in out.iter_mut() {
            *s = s.clamp(-1.0, 1.0);
        }
        out
    }
}

fn frame_times(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let nominal = 1.0 / scenario.fps as f64;
    let mut times = Vec::new();
    if scenario.variable_frame_rate {
        // Intervals between 0.5x and 1.5x nominal, on the 90 kHz clock the encoder uses,
        // so the timestamps the physics sees are exactly the ones written to the file.
        let mut ticks: u64 = 0;
        let tb = VFR_TIME_BASE as f64;
        while (ticks as f64) / tb < scenario.duration_s - 1e-9 {
            times.push(ticks as f64 / tb);
            let dt = nominal * rng.random_range(0.5..1.5f64);
            ticks += ((dt * tb).round() as u64).max(1);
        }
    } else {
        let n = (scenario.duration_s * scenario.fps as f64 - 1e-9).ceil() as usize;
        times.extend((0..n).map(|j| j as f64 * nominal));
    }
    times
}

fn draw_object(out: &mut [u8], w: usize, h: usize, p: &Placed, style: &ClassStyle) {
    // A flash is the object's own silhouette in white, a little larger.
    let r = if p.flash { p.r * 1.15 } else { p.r };
    let color = if p.flash { [255, 255, 255] } else { style.color };
    let x0 = (p.x - r).floor().max(0.0) as usize;
    let x1 = ((p.x + r).ceil() as usize).min(w);
    let y0 = (p.y - r).floor().max(0.0) as usize;
    let y1 = ((p.y + r).ceil() as usize).min(h);
    for y in y0..y1 {
        for x in x0..x1 {
            let dx = (x as f32 + 0.5 - p.x) / r;
            let dy = (y as f32 + 0.5 - p.y) / r;
            if style.shape.contains(dx, dy) {
                out[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&color);
            }
        }
    }
}

/// A greyscale value-noise texture, periodic horizontally so it can scroll forever.
struct Texture {
    width: usize,
    data: Vec<f32>,
}

impl Texture {
    fn new(w: u32, h: u32, rng: &mut ChaCha8Rng) -> Texture {
        let width = (2 * w as usize).div_ceil(32) * 32;
        let h = h as usize;
        let mut data = vec![0f32; width * h];
        for (cell, weight) in [(32usize, 0.6f32), (8, 0.3), (2, 0.1)] {
            let gx = width / cell;
            let gy = h / cell + 2;
            let lattice: Vec<f32> = (0..gx * gy).map(|_| rng.random::<f32>()).collect();
            for y in 0..h {
                let fy = y as f32 / cell as f32;
                let (iy, ty) = (fy as usize, smooth(fy.fract()));
                for x in 0..width {
                    let fx = x as f32 / cell as f32;
                    let (ix, tx) = (fx as usize, smooth(fx.fract()));
                    let ix1 = (ix + 1) % gx;
                    let a = lattice[iy * gx + ix];
                    let b = lattice[iy * gx + ix1];
                    let c = lattice[(iy + 1) * gx + ix];
                    let d = lattice[(iy + 1) * gx + ix1];
                    let top = a + (b - a) * tx;
                    let bottom = c + (d - c) * tx;
                    data[y * width + x] += weight * (top + (bottom - top) * ty);
                }
            }
        }
        Texture { width, data }
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x % self.width]
    }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// A fast deterministic noise source (xorshift64*) for per-pixel and per-sample noise, where
/// a cryptographic-quality stream would cost more than the drawing itself.
struct NoiseStream(u64);

impl NoiseStream {
    fn new(seed: u64) -> NoiseStream {
        NoiseStream(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    /// Uniform in [-amplitude, amplitude).
    fn next_centered(&mut self, amplitude: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(seed: u64) -> Scenario {
        Scenario {
            seed,
            width: 160,
            height: 120,
            fps: 25,
            variable_frame_rate: false,
            duration_s: 4.0,
            sample_rate: 16_000,
            channels: 2,
            label: 1,
            classes: 4,
            object_scale: 1.0,
        }
    }

    fn flash_pixels(frame: &[u8]) -> usize {
        frame
            .chunks_exact(3)
            .filter(|p| p.iter().all(|&v| v >= FLASH_THRESHOLD))
            .count()
    }

    #[test]
    fn object_scale_scales_the_objects() {
        // Pixels in the label's colour (blue, out of the background's reach) over ten
        // frames: the area grows with the square of the scale, less what the frame clips.
        let area = |scale: f32| {
            let mut s = scenario(13);
            s.object_scale = scale;
            let scene = Scene::new(&s);
            let color = CLASSES[s.label].color;
            let mut f = vec![0u8; 160 * 120 * 3];
            (0..10)
                .map(|j| {
                    scene.render_frame(j, &mut f);
                    f.chunks(3).filter(|p| *p == color).count()
                })
                .sum::<usize>()
        };
        let (one, three) = (area(1.0), area(3.0));
        assert!(one > 0);
        assert!(
            (5 * one..=10 * one).contains(&three),
            "area at scale 1: {one} px, at scale 3: {three} px"
        );
    }

    #[test]
    fn same_seed_same_pixels_and_samples() {
        let (a, b) = (Scene::new(&scenario(7)), Scene::new(&scenario(7)));
        let mut fa = vec![0u8; 160 * 120 * 3];
        let mut fb = fa.clone();
        for j in [0, 13, 99] {
            a.render_frame(j, &mut fa);
            b.render_frame(j, &mut fb);
            assert_eq!(fa, fb);
        }
        assert_eq!(a.render_audio(), b.render_audio());
        let c = Scene::new(&scenario(8));
        c.render_frame(13, &mut fb);
        a.render_frame(13, &mut fa);
        assert_ne!(fa, fb);
    }

    #[test]
    fn flashes_appear_exactly_on_impact_frames() {
        let scene = Scene::new(&scenario(3));
        assert_eq!(scene.frame_times().len(), 100);
        assert!(scene.impacts().len() >= 2, "a 4 s video should bounce");
        let impact_frames: std::collections::BTreeSet<usize> =
            scene.impacts().iter().map(|i| i.frame).collect();
        let mut frame = vec![0u8; 160 * 120 * 3];
        for j in 0..scene.frame_times().len() {
            scene.render_frame(j, &mut frame);
            let flashing = flash_pixels(&frame) > 20;
            assert_eq!(flashing, impact_frames.contains(&j), "frame {j}");
        }
    }

    #[test]
    fn each_sound_starts_on_its_impact_sample() {
        let s = scenario(5);
        let scene = Scene::new(&s);
        let audio = scene.render_audio();
        assert_eq!(audio.len(), 4 * 16_000 * 2);
        for imp in scene.impacts() {
            let n0 = (imp.time_s * s.sample_rate as f64).round() as usize;
            let energy = |from: usize, to: usize| -> f32 {
                (from..to.min(audio.len() / 2))
                    .map(|i| audio[i * 2].powi(2) + audio[i * 2 + 1].powi(2))
                    .sum::<f32>()
            };
            // 5 ms after the onset carries far more energy than the 5 ms before it, unless an
            // earlier impact is still ringing.
            let before = energy(n0.saturating_sub(80), n0);
            let after = energy(n0, n0 + 80);
            let ringing = scene
                .impacts()
                .iter()
                .any(|o| o.time_s < imp.time_s && imp.time_s - o.time_s < 0.5);
            if !ringing {
                assert!(
                    after > 10.0 * before,
                    "impact at {} s: {after} vs {before}",
                    imp.time_s
                );
            }
        }
    }

    #[test]
    fn bounces_lose_height_so_time_has_a_direction() {
        let scene = Scene::new(&scenario(11));
        // Consecutive impacts of the same body get weaker until it is dropped again.
        let strengths: Vec<f32> = scene.impacts().iter().map(|i| i.strength).collect();
        assert!(strengths.windows(2).any(|w| w[1] < w[0]));
    }

    #[test]
    fn variable_frame_rate_times_are_monotonic_on_the_90khz_clock() {
        let mut s = scenario(2);
        s.variable_frame_rate = true;
        let scene = Scene::new(&s);
        let t = scene.frame_times();
        assert!(t.windows(2).all(|w| w[1] > w[0]));
        let intervals: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let (lo, hi) = intervals
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(hi > lo * 1.5, "intervals should vary: {lo}..{hi}");
        for &x in t {
            let ticks = x * VFR_TIME_BASE as f64;
            assert!((ticks - ticks.round()).abs() < 1e-6);
        }
    }
}
