//! yolod: YOLO object detection for ARM edge devices, serving the Ultralytics
//! HUB inference API locally. The binary (`main.rs`) only wires these modules.
#![deny(unsafe_code)]

pub mod annotate;
pub mod api;
pub mod camera;
pub mod camera_loop;
pub mod cli;
pub mod commands;
pub mod config;
pub mod config_file;
pub mod engine;
pub mod logging;
pub mod model;
pub mod publish;
pub mod service;
pub mod signals;
pub mod sink;
pub mod slug;
pub mod version;
pub mod vision;
pub mod wire;
