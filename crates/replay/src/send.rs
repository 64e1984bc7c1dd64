//! Re-sending captured requests to a live server (`pov replay send`).
