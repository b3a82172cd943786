#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
int main(int argc,char**argv){ long n=atol(argv[1]); int reps=atoi(argv[2]);
 float*a=malloc(n*4),*b=malloc(n*4),*c=malloc(n*4);
 #pragma omp parallel for
 for(long i=0;i<n;i++){a[i]=1;b[i]=2;c[i]=0;}
 double t0=omp_get_wtime();
 for(int r=0;r<reps;r++){
 #pragma omp parallel for schedule(static)
 for(long i=0;i<n;i++) c[i]=a[i]+1.5f*b[i]+c[i]*0.5f; }
 double s=omp_get_wtime()-t0;
 printf("threads %d n=%ld %.3f s  %.2f GB/s\n",omp_get_max_threads(),n,s,16.0*n*reps/s/1e9);}
