//! The object classes of the synthetic corpus.
//!
//! Each class is recognisable in both modalities: by shape and colour in the picture and by
//! pitch, timbre and decay in the sound. That is what makes the corpus useful for GDT: a model
//! can only line up a clip with its audio if it learns what the objects look and sound like.

/// The silhouette an object is drawn with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// A filled square.
    Square,
    /// A filled triangle.
    Triangle,
    /// A square on its corner.
    Diamond,
    /// A plus sign.
    Cross,
    /// A disc with a hole.
    Ring,
    /// A filled hexagon.
    Hexagon,
    /// A wide, flat rectangle.
    Bar,
}

impl Shape {
    /// Whether the point (dx, dy), relative to the centre and scaled so that the shape's
    /// radius is 1, lies inside the shape.
    pub fn contains(self, dx: f32, dy: f32) -> bool {
        let (ax, ay) = (dx.abs(), dy.abs());
        match self {
            Shape::Circle => dx * dx + dy * dy <= 1.0,
            Shape::Square => ax <= 0.85 && ay <= 0.85,
            // Apex up, base at dy = 0.8.
            Shape::Triangle => (-1.0..=0.8).contains(&dy) && ax <= (dy + 1.0) * 0.5,
            Shape::Diamond => ax + ay <= 1.0,
            Shape::Cross => (ax <= 0.3 && ay <= 1.0) || (ay <= 0.3 && ax <= 1.0),
            Shape::Ring => {
                let r2 = dx * dx + dy * dy;
                (0.36..=1.0).contains(&r2)
            }
            Shape::Hexagon => ay <= 0.866 && ax * 0.866 + ay * 0.5 <= 0.866,
            Shape::Bar => ax <= 1.0 && ay <= 0.35,
        }
    }
}

/// How one class looks and sounds.
#[derive(Clone, Copy, Debug)]
pub struct ClassStyle {
    /// The label name.
    pub name: &'static str,
    /// What its objects look like.
    pub shape: Shape,
    /// RGB colour. Every channel stays below the flash threshold in at least one channel so
    /// that a flash (pure white) can never be confused with the object itself.
    pub color: [u8; 3],
    /// Fundamental of the impact sound, Hz.
    pub pitch_hz: f32,
    /// Relative amplitudes of harmonics 1, 2, 3 and 4: the timbre.
    pub harmonics: [f32; 4],
    /// Time constant of the exponential decay, seconds.
    pub decay_s: f32,
}

/// The class table. `gdt synth --classes K` uses the first K entries.
pub const CLASSES: [ClassStyle; 8] = [
    ClassStyle {
        name: "red-circle",
        shape: Shape::Circle,
        color: [220, 50, 50],
        pitch_hz: 220.0,
        harmonics: [1.0, 0.5, 0.25, 0.1],
        decay_s: 0.18,
    },
    ClassStyle {
        name: "blue-square",
        shape: Shape::Square,
        color: [50, 90, 230],
        pitch_hz: 330.0,
        harmonics: [1.0, 0.0, 0.6, 0.0],
        decay_s: 0.10,
    },
    ClassStyle {
        name: "green-triangle",
        shape: Shape::Triangle,
        color: [40, 190, 70],
        pitch_hz: 494.0,
        harmonics: [1.0, 0.8, 0.0, 0.3],
        decay_s: 0.14,
    },
    ClassStyle {
        name: "yellow-diamond",
        shape: Shape::Diamond,
        color: [230, 200, 40],
        pitch_hz: 659.0,
        harmonics: [1.0, 0.2, 0.2, 0.2],
        decay_s: 0.07,
    },
    ClassStyle {
        name: "magenta-cross",
        shape: Shape::Cross,
        color: [200, 60, 200],
        pitch_hz: 880.0,
        harmonics: [1.0, 0.0, 0.0, 0.5],
        decay_s: 0.22,
    },
    ClassStyle {
        name: "cyan-ring",
        shape: Shape::Ring,
        color: [40, 200, 210],
        pitch_hz: 1175.0,
        harmonics: [1.0, 0.4, 0.0, 0.0],
        decay_s: 0.12,
    },
    ClassStyle {
        name: "orange-hexagon",
        shape: Shape::Hexagon,
        color: [240, 130, 30],
        pitch_hz: 1568.0,
        harmonics: [1.0, 0.0, 0.3, 0.0],
        decay_s: 0.09,
    },
    ClassStyle {
        name: "purple-bar",
        shape: Shape::Bar,
        color: [120, 60, 200],
        pitch_hz: 2093.0,
        harmonics: [1.0, 0.6, 0.4, 0.2],
        decay_s: 0.05,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_contains_its_centre_and_excludes_far_points() {
        for c in CLASSES {
            // The ring is hollow by design.
            if c.shape != Shape::Ring {
                assert!(c.shape.contains(0.0, 0.0), "{}", c.name);
            } else {
                assert!(!c.shape.contains(0.0, 0.0));
                assert!(c.shape.contains(0.8, 0.0));
            }
            assert!(!c.shape.contains(1.2, 1.2), "{}", c.name);
        }
    }

    #[test]
    fn classes_differ_in_look_and_sound() {
        for (i, a) in CLASSES.iter().enumerate() {
            for b in &CLASSES[i + 1..] {
                assert_ne!(a.shape, b.shape);
                assert_ne!(a.color, b.color);
                assert!((a.pitch_hz - b.pitch_hz).abs() > 50.0);
            }
            // No class colour may pass for a flash.
            assert!(a.color.iter().any(|&v| v < super::super::scene::FLASH_THRESHOLD));
        }
    }
}
