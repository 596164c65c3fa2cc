-- wrk script for runs without a script of their own (/healthz in
-- scripts/bench): only a done() hook, which prints the percentiles of wrk's
-- latency histogram that `wrk --latency` does not (p99.9), in the format
-- bench/tasks.lua uses:
--
--   bench-latency-us p50 P p90 P p99 P p99.9 P max M
--
-- It defines no request(), response() or delay(), so wrk keeps its static
-- request and does not parse responses: the measured path is unchanged.

function done(summary, latency, requests)
   io.write(string.format("bench-latency-us p50 %d p90 %d p99 %d p99.9 %d max %d\n",
                          latency:percentile(50), latency:percentile(90),
                          latency:percentile(99), latency:percentile(99.9), latency.max))
end
