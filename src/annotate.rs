//! Pictures of a prediction: boxes, labels with scores, masks and pose
//! skeletons drawn on the input image at its own size, then JPEG.
//!
//! Only the glyphs come from a crate (ab_glyph: font parsing and coverage
//! rasterisation); rectangles, filled polygons, thick lines and discs are a
//! few lines each here, so the drawing costs no further dependency.

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

use crate::vision::Object;
use crate::vision::decode::Rgb;

/// DejaVu Sans Bold cut to Latin-1 (`assets/fonts/make.sh`; licence beside it).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-Bold-latin1.ttf");

/// Class colours, by class index modulo 20 (the Ultralytics plotting palette).
const PALETTE: [[u8; 3]; 20] = [
    [0xFF, 0x38, 0x38],
    [0xFF, 0x9D, 0x97],
    [0xFF, 0x70, 0x1F],
    [0xFF, 0xB2, 0x1D],
    [0xCF, 0xD2, 0x31],
    [0x48, 0xF9, 0x0A],
    [0x92, 0xCC, 0x17],
    [0x3D, 0xDB, 0x86],
    [0x1A, 0x93, 0x34],
    [0x00, 0xD4, 0xBB],
    [0x2C, 0x99, 0xA8],
    [0x00, 0xC2, 0xFF],
    [0x34, 0x45, 0x93],
    [0x64, 0x73, 0xFF],
    [0x00, 0x18, 0xEC],
    [0x84, 0x38, 0xFF],
    [0x52, 0x00, 0x85],
    [0xCB, 0x38, 0xFF],
    [0xFF, 0x95, 0xC8],
    [0xFF, 0x37, 0xC7],
];

/// COCO keypoint limbs as index pairs, and the part each belongs to.
const SKELETON: [(usize, usize, Limb); 19] = [
    (15, 13, Limb::Leg),
    (13, 11, Limb::Leg),
    (16, 14, Limb::Leg),
    (14, 12, Limb::Leg),
    (11, 12, Limb::Trunk),
    (5, 11, Limb::Trunk),
    (6, 12, Limb::Trunk),
    (5, 6, Limb::Trunk),
    (5, 7, Limb::Arm),
    (6, 8, Limb::Arm),
    (7, 9, Limb::Arm),
    (8, 10, Limb::Arm),
    (1, 2, Limb::Face),
    (0, 1, Limb::Face),
    (0, 2, Limb::Face),
    (1, 3, Limb::Face),
    (2, 4, Limb::Face),
    (3, 5, Limb::Face),
    (4, 6, Limb::Face),
];

#[derive(Clone, Copy)]
enum Limb {
    Face,
    Arm,
    Trunk,
    Leg,
}

impl Limb {
    fn color(self) -> [u8; 3] {
        match self {
            Limb::Face => [0x33, 0x99, 0xFF],
            Limb::Arm => [0x00, 0xFF, 0x66],
            Limb::Trunk => [0xFF, 0x99, 0x33],
            Limb::Leg => [0xFF, 0x33, 0x99],
        }
    }
}

/// Keypoints whose score is below this are neither dotted nor joined.
const KEYPOINT_MIN_SCORE: f32 = 0.5;
const MASK_ALPHA: f32 = 0.45;

/// The colour a class is drawn in.
pub fn class_color(class: usize) -> [u8; 3] {
    PALETTE[class % PALETTE.len()]
}

/// Draws every object on `image`: masks first (under everything), then
/// boxes, skeletons and labels. `names` maps class indices to labels.
pub fn draw(image: &mut Rgb, objects: &[Object], names: &[String]) {
    let (w, h) = (image.width as usize, image.height as usize);
    let mut canvas = Canvas { w, h, px: &mut image.data };
    // Line width and text size grow with the picture, as Ultralytics' plots do.
    let line = (((w + h) as f32 / 2.0 * 0.003).round() as i64).max(2);
    let text_px = ((w + h) as f32 / 2.0 * 0.035).round().max(12.0);
    let font = FontRef::try_from_slice(FONT).expect("the embedded font parses (tested)");
    for o in objects {
        if let Some(outline) = &o.segments {
            canvas.fill_polygon(outline, class_color(o.detection.class), MASK_ALPHA);
        }
    }
    for o in objects {
        let color = class_color(o.detection.class);
        let b = o.detection.bbox;
        let (x1, y1, x2, y2) = (canvas.x(b.x1), canvas.y(b.y1), canvas.x(b.x2), canvas.y(b.y2));
        canvas.fill_rect(x1, y1, x2, y1 + line, color, 1.0);
        canvas.fill_rect(x1, y2 - line, x2, y2, color, 1.0);
        canvas.fill_rect(x1, y1, x1 + line, y2, color, 1.0);
        canvas.fill_rect(x2 - line, y1, x2, y2, color, 1.0);
        if let Some(k) = &o.keypoints {
            let seen = |i: usize| (i < k.x.len() && k.visible[i] >= KEYPOINT_MIN_SCORE).then(|| (k.x[i], k.y[i]));
            if k.x.len() == 17 {
                for (a, z, limb) in SKELETON {
                    if let (Some(a), Some(z)) = (seen(a), seen(z)) {
                        canvas.thick_line(a, z, line as f32, limb.color());
                    }
                }
            }
            for p in (0..k.x.len()).filter_map(seen) {
                canvas.disc(p, line as f32 + 1.5, [0xFF, 0xFF, 0xFF]);
                canvas.disc(p, line as f32 + 0.5, color);
            }
        }
    }
    for o in objects {
        let name = names.get(o.detection.class).map_or("?", String::as_str);
        let label = format!("{name} {:.2}", o.detection.confidence);
        canvas.label(&font, PxScale::from(text_px), o, &label, line);
    }
}

/// Quality of every JPEG yolod makes (pictures, snapshots).
pub const JPEG_QUALITY: u8 = 90;

/// The image as a JPEG at `JPEG_QUALITY`.
pub fn to_jpeg(image: &Rgb) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(image.data.len() / 8);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).encode(
        &image.data,
        image.width,
        image.height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// Row-major RGB8 pixels with clipped, alpha-blended primitives.
struct Canvas<'a> {
    w: usize,
    h: usize,
    px: &'a mut [u8],
}

impl Canvas<'_> {
    /// A box coordinate as a pixel column, kept just around the canvas so
    /// that nothing downstream overflows (NaN lands on 0).
    fn x(&self, v: f32) -> i64 {
        v.round().clamp(-1.0, self.w as f32 + 1.0) as i64
    }

    fn y(&self, v: f32) -> i64 {
        v.round().clamp(-1.0, self.h as f32 + 1.0) as i64
    }

    fn blend(&mut self, x: i64, y: i64, color: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        let a = alpha.clamp(0.0, 1.0);
        for (c, &v) in self.px[i..i + 3].iter_mut().zip(&color) {
            *c = (*c as f32 * (1.0 - a) + v as f32 * a).round() as u8;
        }
    }

    /// Fills `[x0, x1) x [y0, y1)`, clipped to the canvas.
    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3], alpha: f32) {
        for y in y0.max(0)..y1.min(self.h as i64) {
            for x in x0.max(0)..x1.min(self.w as i64) {
                self.blend(x, y, color, alpha);
            }
        }
    }

    /// Fills a polygon (even-odd rule), sampling each pixel at its centre.
    fn fill_polygon(&mut self, points: &[(f32, f32)], color: [u8; 3], alpha: f32) {
        if points.len() < 3 {
            return;
        }
        let (lo, hi) = points.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        if !(lo.is_finite() && hi.is_finite()) {
            return;
        }
        let mut crossings = Vec::new();
        for y in (lo.floor().max(0.0) as i64)..(hi.ceil().min(self.h as f32) as i64) {
            let sy = y as f32 + 0.5;
            crossings.clear();
            for (i, &(ax, ay)) in points.iter().enumerate() {
                let (bx, by) = points[(i + 1) % points.len()];
                if (ay <= sy) != (by <= sy) {
                    crossings.push(ax + (sy - ay) / (by - ay) * (bx - ax));
                }
            }
            crossings.sort_by(f32::total_cmp);
            for pair in crossings.chunks_exact(2) {
                // Pixels whose centre x + 0.5 lies in [pair[0], pair[1]).
                let (from, to) = ((pair[0] - 0.5).ceil() as i64, (pair[1] - 0.5).ceil() as i64);
                self.fill_rect(from, y, to, y + 1, color, alpha);
            }
        }
    }

    /// A line `width` pixels wide with round ends.
    fn thick_line(&mut self, a: (f32, f32), b: (f32, f32), width: f32, color: [u8; 3]) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len > 0.0 {
            let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
            let quad = [(a.0 + nx, a.1 + ny), (b.0 + nx, b.1 + ny), (b.0 - nx, b.1 - ny), (a.0 - nx, a.1 - ny)];
            self.fill_polygon(&quad, color, 1.0);
        }
        self.disc(a, width / 2.0, color);
        self.disc(b, width / 2.0, color);
    }

    fn disc(&mut self, c: (f32, f32), r: f32, color: [u8; 3]) {
        for y in (c.1 - r).floor() as i64..=(c.1 + r).ceil() as i64 {
            for x in (c.0 - r).floor() as i64..=(c.0 + r).ceil() as i64 {
                let (ex, ey) = (x as f32 + 0.5 - c.0, y as f32 + 0.5 - c.1);
                if ex * ex + ey * ey <= r * r {
                    self.blend(x, y, color, 1.0);
                }
            }
        }
    }

    /// The label on a filled tab above the box (inside it when the box
    /// touches the top), kept on the canvas horizontally.
    fn label(&mut self, font: &FontRef, scale: PxScale, o: &Object, text: &str, line: i64) {
        let color = class_color(o.detection.class);
        let scaled = font.as_scaled(scale);
        let glyphs = layout(font, scale, text);
        let text_w = glyphs.last().map_or(0.0, |&(id, x)| x + scaled.h_advance(id));
        let (pad, text_h) = (line, (scaled.ascent() - scaled.descent()).ceil() as i64);
        let (tab_w, tab_h) = (text_w.ceil() as i64 + 2 * pad, text_h + pad);
        let b = o.detection.bbox;
        let x = self.x(b.x1).min(self.w as i64 - tab_w).max(0);
        let top = self.y(b.y1) - tab_h;
        let y = if top >= 0 { top } else { self.y(b.y1) };
        self.fill_rect(x, y, x + tab_w, y + tab_h, color, 1.0);
        // Dark text on light colours, white on dark (Rec. 601 luma).
        let luma = 0.299 * color[0] as f32 + 0.587 * color[1] as f32 + 0.114 * color[2] as f32;
        let ink = if luma > 160.0 { [0, 0, 0] } else { [0xFF, 0xFF, 0xFF] };
        let baseline = y as f32 + pad as f32 / 2.0 + scaled.ascent();
        for (id, gx) in glyphs {
            let glyph = id.with_scale_and_position(scale, point(x as f32 + pad as f32 + gx, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                let (ox, oy) = (bounds.min.x as i64, bounds.min.y as i64);
                outline.draw(|gx, gy, coverage| self.blend(ox + gx as i64, oy + gy as i64, ink, coverage));
            }
        }
    }
}

/// Each glyph of `text` and its pen x (kerning applied).
fn layout(font: &FontRef, scale: PxScale, text: &str) -> Vec<(GlyphId, f32)> {
    let scaled = font.as_scaled(scale);
    let mut x = 0.0;
    let mut previous: Option<GlyphId> = None;
    let mut out = Vec::with_capacity(text.len());
    for ch in text.chars() {
        let id = font.glyph_id(ch);
        if let Some(p) = previous {
            x += scaled.kern(p, id);
        }
        out.push((id, x));
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::pose::Keypoints;
    use crate::vision::{BBox, Detection};

    fn blank(w: u32, h: u32) -> Rgb {
        Rgb { width: w, height: h, data: vec![0; (w * h * 3) as usize] }
    }

    fn at(img: &Rgb, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * img.width + x) * 3) as usize;
        [img.data[i], img.data[i + 1], img.data[i + 2]]
    }

    fn object(class: usize, bbox: BBox) -> Object {
        Object::new(Detection { class, confidence: 0.87, bbox, anchor: 0 }, bbox)
    }

    #[test]
    fn the_embedded_font_parses_and_has_latin1() {
        let font = FontRef::try_from_slice(FONT).unwrap();
        for ch in ['a', 'Z', '0', '.', ' ', 'é', 'ß'] {
            assert_ne!(font.glyph_id(ch).0, 0, "{ch:?} missing");
        }
    }

    #[test]
    fn box_edges_take_the_class_colour_and_the_inside_stays() {
        let mut img = blank(200, 150);
        let b = BBox { x1: 50.0, y1: 60.0, x2: 150.0, y2: 140.0 };
        draw(&mut img, &[object(3, b)], &["a".into(), "b".into(), "c".into(), "truck".into()]);
        let c = class_color(3);
        assert_eq!(at(&img, 50, 100), c, "left edge");
        assert_eq!(at(&img, 149, 100), c, "right edge");
        assert_eq!(at(&img, 100, 139), c, "bottom edge");
        assert_eq!(at(&img, 100, 100), [0, 0, 0], "inside untouched");
        assert_eq!(at(&img, 10, 10), [0, 0, 0], "outside untouched");
    }

    #[test]
    fn label_sits_above_the_box_and_has_ink() {
        let mut img = blank(300, 200);
        let b = BBox { x1: 20.0, y1: 100.0, x2: 280.0, y2: 190.0 };
        draw(&mut img, &[object(0, b)], &["person".into()]);
        // The tab spans some rows above y1; it holds both tab colour and ink.
        let tab: Vec<[u8; 3]> =
            (70..100).flat_map(|y| (20..120).map(move |x| (x, y))).map(|(x, y)| at(&img, x, y)).collect();
        let colour = tab.iter().filter(|&&p| p == class_color(0)).count();
        let ink = tab.iter().filter(|&&p| p[0] > 240 && p[1] > 240 && p[2] > 240).count();
        assert!(colour > 500, "tab pixels {colour}");
        assert!(ink > 30, "text pixels {ink}");
    }

    #[test]
    fn label_of_a_box_at_the_top_goes_inside_and_stays_on_canvas() {
        let mut img = blank(120, 100);
        let b = BBox { x1: 100.0, y1: 0.0, x2: 120.0, y2: 50.0 };
        draw(&mut img, &[object(0, b)], &["person".into()]);
        // Wider than the 20 px box at the right border: the tab is shifted left
        // (tab colour left of x1) and starts at the top row, inside the box.
        let tab_left_of_box = (0..100).filter(|&x| at(&img, x, 0) == class_color(0)).count();
        assert!(tab_left_of_box > 20, "{tab_left_of_box}");
        assert_eq!(at(&img, 119, 0), class_color(0));
        assert_eq!(at(&img, 50, 40), [0, 0, 0], "below the tab, left of the box");
    }

    #[test]
    fn mask_polygon_is_blended_inside_only() {
        let mut img = blank(100, 100);
        let b = BBox { x1: 10.0, y1: 10.0, x2: 90.0, y2: 90.0 };
        let mut o = object(1, b);
        o.segments = Some(vec![(30.0, 30.0), (70.0, 30.0), (70.0, 70.0), (30.0, 70.0)]);
        draw(&mut img, &[o], &["x".into(), "y".into()]);
        let inside = at(&img, 50, 50);
        let expected = class_color(1).map(|v| (v as f32 * MASK_ALPHA).round() as u8);
        assert_eq!(inside, expected);
        assert_eq!(at(&img, 25, 50), [0, 0, 0]);
        // Pixel centres decide: column 29 (centre 29.5) out, 30 in, 69 in, 70 out.
        assert_eq!(at(&img, 29, 50), [0, 0, 0]);
        assert_eq!(at(&img, 30, 50), expected);
        assert_eq!(at(&img, 69, 50), expected);
        assert_eq!(at(&img, 70, 50), [0, 0, 0]);
    }

    #[test]
    fn skeleton_joins_visible_keypoints_only() {
        let mut img = blank(200, 200);
        let b = BBox { x1: 0.0, y1: 150.0, x2: 40.0, y2: 199.0 };
        let mut o = object(0, b);
        let mut k = Keypoints { x: vec![0.0; 17], y: vec![0.0; 17], visible: vec![0.0; 17] };
        // Left shoulder (5) to left elbow (7): visible. Right shoulder (6) to elbow (8): elbow hidden.
        for (i, x, y, v) in [(5, 60.0, 50.0, 0.9), (7, 140.0, 50.0, 0.9), (6, 60.0, 120.0, 0.9), (8, 140.0, 120.0, 0.1)]
        {
            (k.x[i], k.y[i], k.visible[i]) = (x, y, v);
        }
        o.keypoints = Some(k);
        draw(&mut img, &[o], &["person".into()]);
        assert_eq!(at(&img, 100, 50), Limb::Arm.color(), "visible limb drawn");
        assert_eq!(at(&img, 100, 120), [0, 0, 0], "limb to a hidden keypoint not drawn");
        assert_eq!(at(&img, 60, 120), class_color(0), "visible keypoint dotted");
        assert_eq!(at(&img, 140, 120), [0, 0, 0], "hidden keypoint not dotted");
    }

    #[test]
    fn boxes_partly_or_wholly_outside_are_clipped_not_panics() {
        let mut img = blank(50, 40);
        let boxes = [
            BBox { x1: -30.0, y1: -20.0, x2: 80.0, y2: 90.0 },
            BBox { x1: 500.0, y1: 500.0, x2: 600.0, y2: 600.0 },
            BBox { x1: f32::NAN, y1: 0.0, x2: 10.0, y2: f32::INFINITY },
        ];
        let mut objects: Vec<Object> = boxes.iter().map(|&b| object(7, b)).collect();
        objects[0].segments = Some(vec![(-5.0, -5.0), (f32::NAN, 3.0), (60.0, 60.0)]);
        draw(&mut img, &objects, &[]);
    }

    #[test]
    fn jpeg_round_trips_at_the_same_size() {
        let img = blank(64, 48);
        let bytes = to_jpeg(&img).unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (64, 48));
    }
}
