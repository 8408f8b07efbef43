"""CPU-only tuning: fastconv (3x3 convolutions), fastmath (float32 atan2, sin, cos), hostmem (huge pages)."""
