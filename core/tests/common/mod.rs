//! Shared by the allocation and mutation tests (and included by the fuzz targets).
#![allow(dead_code)]

pub mod alloc;
pub mod fixup;
pub mod records;
