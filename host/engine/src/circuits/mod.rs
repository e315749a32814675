//! Layer 5, circuits: Chebyshev interpolation and homomorphic polynomial evaluation, linear
//! transformations by diagonals, and bootstrapping.

pub mod arith;
pub mod bootstrap;
pub mod chebyshev;
pub mod dft;
pub mod linear;
pub mod polynomial;
