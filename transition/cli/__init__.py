"""Layer 7, the `transition` command line: inspect, convert, avg, status, train, plan (`_main.main`)."""
