//! The image engine: bytes in, bytes out (being written).
