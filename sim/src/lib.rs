//! The stormhold simulator driver (work in progress: see issue 2).
