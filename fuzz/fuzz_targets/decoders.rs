//! Fuzzes the output decoders with arbitrary tensors: head maps, NMS, masks
//! to polygons, keypoints, and the picture drawn from them. Whatever the
//! network says, no panic, and every box lands inside the image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yolod::annotate;
use yolod::vision::Object;
use yolod::vision::decode::Rgb;
use yolod::vision::detect::{HeadMap, REG_MAX, decode_head};
use yolod::vision::letterbox::Letterbox;
use yolod::vision::mask::{Protos, largest_region_outline, object_mask};
use yolod::vision::nms::nms;
use yolod::vision::pose::{KeypointMap, decode as keypoints};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (h, w) = (1 + data[0] as usize % 4, 1 + data[1] as usize % 4);
    let classes = 1 + data[2] as usize % 3;
    let floats: Vec<f32> = data[4..]
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            f32::from_le_bytes(b)
        })
        .collect();
    let need = (4 * REG_MAX + classes) * h * w;
    let map: Vec<f32> = (0..need).map(|i| floats.get(i % floats.len().max(1)).copied().unwrap_or(0.0)).collect();
    let size = (w * 8) as u32;
    let lb = Letterbox::new(100 + data[3] as u32, 50 + data[1] as u32, size, size);
    let dets = nms(decode_head(&[HeadMap::joined(&map, h, w, 8.0)], classes, 0.25), 0.45, 300);
    let protos_data: Vec<f32> = (0..2 * 4 * 4).map(|i| floats.get(i).copied().unwrap_or(1.0)).collect();
    let protos = Protos { data: &protos_data, count: 2, h: 4, w: 4 };
    let mut objects = Vec::new();
    for d in dets {
        let b = lb.unmap(d.bbox);
        assert!(
            b.x1 >= 0.0 && b.x2 <= lb.src_w as f32 && b.y1 >= 0.0 && b.y2 <= lb.src_h as f32
                || b.x1.is_nan()
                || b.x2.is_nan()
                || b.y1.is_nan()
                || b.y2.is_nan()
        );
        let mask = object_mask(&protos, &[1.0, -0.5], d.bbox, b, &lb);
        let mut object = Object::new(d.clone(), b);
        object.segments = Some(largest_region_outline(&mask));
        let kmap: Vec<f32> = map[..3 * h * w].to_vec();
        object.keypoints = keypoints(&[KeypointMap { data: &kmap, h, w, stride: 8.0 }], d.anchor, 1, &lb);
        objects.push(object);
    }
    // Whatever came out can be drawn on the source image.
    let mut picture = Rgb { width: lb.src_w, height: lb.src_h, data: vec![0; (lb.src_w * lb.src_h * 3) as usize] };
    annotate::draw(&mut picture, &objects, &["a".to_string()]);
});
