#!/bin/sh
# Machine probes behind BENCHMARKS.md's "What limits the scaling here" (needs gcc/g++ with OpenMP):
#   fma        independent AVX2 FMAs: one process, then two at once (are the cores separate?)
#   omp_stream a triad over 48 MB and 192 MB on 1 and 2 OpenMP threads (memory bandwidth in one process)
#   pingpong   one cache line bounced between two pinned threads (core-to-core latency)
#   pool       a C++ copy of Taichi 1.7's thread pool (condition variable, one atomic task counter)
set -e
dir=$(mktemp -d)
here=$(dirname "$0")
gcc -O2 -mavx2 -mfma "$here/fma.c" -o "$dir/fma"
gcc -O3 -march=native -fopenmp "$here/omp_stream.c" -o "$dir/omp_stream"
gcc -O2 -pthread "$here/pingpong.c" -o "$dir/pingpong"
g++ -O2 -pthread "$here/pool.cpp" -o "$dir/pool"
echo "== fma: one process, then two"; "$dir/fma" 400000000; "$dir/fma" 400000000 & "$dir/fma" 400000000; wait
echo "== omp_stream"
for n in 4000000 16000000; do r=$((1600000000 / n))
  OMP_NUM_THREADS=1 "$dir/omp_stream" $n $r; OMP_NUM_THREADS=2 "$dir/omp_stream" $n $r; done
echo "== pingpong (cores 0 and 1)"; "$dir/pingpong" 1
echo "== pool: 1 worker, then 2"; "$dir/pool" 1; "$dir/pool" 2
rm -rf "$dir"
