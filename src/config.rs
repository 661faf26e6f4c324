//! Connection and run settings: `vrbulk.toml`, then the environment, then flags.
