//! Source-reporting probe (filled in with the datapath tests).
