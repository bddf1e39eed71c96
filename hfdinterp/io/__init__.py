"""Files in and out: still images, video sources and sinks, exact timing, scene cuts, flow pictures."""
