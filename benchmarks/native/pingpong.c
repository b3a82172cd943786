#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <time.h>
static _Atomic long flag __attribute__((aligned(64)));
static long N = 2000000;
static void pin(int c){cpu_set_t s; CPU_ZERO(&s); CPU_SET(c,&s); pthread_setaffinity_np(pthread_self(),sizeof s,&s);}
static void* other(void* a){ pin(*(int*)a); for(long i=0;i<N;i++){ while(atomic_load_explicit(&flag,memory_order_acquire)!=2*i+1); atomic_store_explicit(&flag,2*i+2,memory_order_release);} return 0;}
int main(int argc,char**argv){ int c0=0,c1=atoi(argv[1]); pthread_t t; pthread_create(&t,0,other,&c1); pin(c0);
 struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);
 for(long i=0;i<N;i++){ atomic_store_explicit(&flag,2*i+1,memory_order_release); while(atomic_load_explicit(&flag,memory_order_acquire)!=2*i+2);}
 clock_gettime(CLOCK_MONOTONIC,&b); pthread_join(t,0);
 double s=(b.tv_sec-a.tv_sec)+1e-9*(b.tv_nsec-a.tv_nsec); printf("cores 0-%d: one-way %.0f ns\n", c1, s/N/2*1e9); }
