#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>
// throughput-bound: 8 independent FMA chains of 8 floats
int main(int argc, char**argv){
  long n = atol(argv[1]);
  __m256 a[8]; __m256 m=_mm256_set1_ps(0.9999f), c=_mm256_set1_ps(0.0001f);
  for(int i=0;i<8;i++) a[i]=_mm256_set1_ps(i);
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  for(long k=0;k<n;k++){ for(int i=0;i<8;i++) a[i]=_mm256_fmadd_ps(a[i],m,c);}
  clock_gettime(CLOCK_MONOTONIC,&t1);
  float s=0; for(int i=0;i<8;i++){float o[8]; _mm256_storeu_ps(o,a[i]); s+=o[0];}
  printf("%.3f s (%g)\n",(t1.tv_sec-t0.tv_sec)+1e-9*(t1.tv_nsec-t0.tv_nsec), s);
}
