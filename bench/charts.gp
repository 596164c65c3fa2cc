# gnuplot script of scripts/bench: the two charts of a benchmark run.
#
#   gnuplot -e "dir='bench/results'; target_ms=10; target_load=50; maxrps=8000" bench/charts.gp
#
# Reads, in dir (written by scripts/bench):
#   throughput.dat  scenario  todo-backend_req/s  ceiling_req/s  ratio  top
#                   (ceiling: pgbench with the same SQL at the same connection
#                   count; nginx for healthz; "-" when none; top: the larger
#                   of the two, where the ratio label goes)
#   latency.dat     load_%  offered_req/s  achieved_req/s  p50  p90  p99  p99.9
#                   (ms; the paced runs of the mixed workload)
# maxrps (optional): the measured mixed maximum, drawn as a vertical line.
# skip_throughput, skip_latency (optional, any value): leave that chart out
# (its data file is empty).
# Writes dir/throughput.png and dir/latency.png (pngcairo when this gnuplot
# has it, as Debian's gnuplot-nox does, else the libgd png terminal).

if (!exists("dir")) dir = "bench/results"
if (!exists("target_ms")) target_ms = 10
if (!exists("target_load")) target_load = 50

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1100,600 enhanced font "sans,10"
} else {
    set terminal png size 1100,600 font "sans,10"
}
set datafile missing "-"
set key top right
set grid ytics

# (a) Throughput per scenario against its database ceiling.
if (!exists("skip_throughput")) {
set output dir."/throughput.png"
set title "Throughput per scenario against its ceiling (log scale; label: ratio)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set logscale y
set yrange [10:*]
set ylabel "requests/s (pgbench: transactions/s)"
set xtics rotate by -30 nomirror
set offsets 0, 0, 0, 0
set rmargin 9
plot dir."/throughput.dat" using 2:xtic(1) title "todo-backend" lc rgb "#1f77b4", \
     "" using 3 title "ceiling: pgbench, same SQL and connections (healthz: nginx)" lc rgb "#aaaaaa", \
     "" using 0:($5 * 1.35):4 with labels notitle font ",9"
}

unset logscale y
unset style
unset boxwidth
set style fill empty
set xtics norotate

# (b) Latency percentiles against offered load (open-loop, paced runs).
if (exists("skip_latency")) exit
set output dir."/latency.png"
set title sprintf("Mixed workload, paced: latency against offered load (target: p99 <= %g ms at %g %% of max)", target_ms, target_load)
set logscale y
set yrange [*:*]
set xrange [0:*]
set offsets 0, 0, graph 0.12, 0
if (exists("maxrps")) {
    set xrange [0:maxrps * 1.05]
    set arrow from maxrps, graph 0 to maxrps, graph 1 nohead dt 3 lc rgb "black"
    set label sprintf("measured maximum (closed loop): %g req/s ", maxrps) at maxrps, graph 0.95 right
}
set xlabel "offered load, requests/s (label: % of the measured maximum)"
set ylabel "latency, ms (log scale)"
set key top left
plot dir."/latency.dat" using 2:4 with linespoints lw 2 pt 7 title "p50", \
     "" using 2:5 with linespoints lw 2 pt 5 title "p90", \
     "" using 2:6 with linespoints lw 2 pt 9 title "p99", \
     "" using 2:7 with linespoints lw 2 pt 11 title "p99.9", \
     "" using 2:7:(sprintf("%d %%", $1)) with labels offset 0,1.2 notitle, \
     target_ms with lines dt 2 lc rgb "red" title sprintf("%g ms", target_ms)
