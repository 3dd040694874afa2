/* mpi.c - see mpi.h. Point-to-point only: each rank sends its items' results to rank 0 in
 * item order, and rank 0 receives them in item order from their owners (MPI keeps the order
 * of messages between two ranks), so no index travels with them. */
#include "mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MF_WITH_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_joined = 0;

int cli_mpi_rank(void) { return g_rank; }
int cli_mpi_size(void) { return g_size; }

int cli_mpi_built(void)
{
#ifdef MF_WITH_MPI
    return 1;
#else
    return 0;
#endif
}

#ifdef MF_WITH_MPI
/* Started by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE, PMIx launchers PMIX_RANK)? */
static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}
#endif

int cli_mpi_start(void)
{
#ifdef MF_WITH_MPI
    if (!launched())
        return 0;
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        fprintf(stderr, "malfam: MPI_Init failed\n");
        return -1;
    }
    g_joined = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
#else
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (n && atoi(n) > 1) {
        /* every rank would do the whole work and write the same output: refuse, on each */
        fprintf(stderr, "malfam: launched by mpirun, but built without MPI (make MPI=1 with "
                        "libopenmpi-dev installed)\n");
        return -1;
    }
#endif
    return 0;
}

#ifdef MF_WITH_MPI
/* Wait for a request without spinning: a rank that is done waits for rank 0's calibration and
 * write, minutes at scale, and a busy-polling wait would take a core from whoever shares it. */
static int idle_wait(MPI_Request *req)
{
    int done = 0;
    while (!done) {
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (!done)
            nanosleep(&(struct timespec){0, 2000000}, NULL); /* 2 ms */
    }
    return 0;
}
#endif

void cli_mpi_end(int status)
{
#ifdef MF_WITH_MPI
    if (!g_joined)
        return;
    g_joined = 0;
    if (status != 0 && g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Request req; /* everyone here first, sleeping; then MPI_Finalize does not wait long */
    if (g_size > 1 && MPI_Ibarrier(MPI_COMM_WORLD, &req) == MPI_SUCCESS)
        idle_wait(&req);
    MPI_Finalize();
#else
    (void)status;
    (void)g_joined;
#endif
}

void cli_mpi_assign(const double *cost, int n, int *owner)
{
    double *load = calloc((size_t)g_size, sizeof *load);
    unsigned char *done = calloc(n > 0 ? (size_t)n : 1, 1);
    if (!load || !done) { /* cannot balance: round-robin is still a valid split */
        for (int i = 0; i < n; i++)
            owner[i] = i % g_size;
        free(load);
        free(done);
        return;
    }
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!done[i] && (best < 0 || cost[i] > cost[best]))
                best = i;
        int r = 0;
        for (int q = 1; q < g_size; q++)
            if (load[q] < load[r])
                r = q;
        owner[best] = r;
        load[r] += cost[best];
        done[best] = 1;
    }
    free(load);
    free(done);
}

#ifdef MF_WITH_MPI
enum { TAG_LEN = 7101, TAG_DATA = 7102 };
#define CHUNK ((size_t)1 << 30) /* MPI counts are ints */
#define FAILED UINT64_MAX

/* Sends wait for the receiver (rank 0 perhaps still training its own items) sleeping, not
 * spinning. */
static int send_idle(const void *p, int count, MPI_Datatype type, int to, int tag)
{
    MPI_Request req;
    if (MPI_Isend(p, count, type, to, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return -1;
    return idle_wait(&req);
}

/* Rank 0 waits for a slower rank the same way. */
static int recv_idle(void *p, int count, MPI_Datatype type, int from, int tag)
{
    MPI_Request req;
    if (MPI_Irecv(p, count, type, from, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return -1;
    return idle_wait(&req);
}

static int send_item(int rc, const uint8_t *buf, size_t len, int to)
{
    uint64_t n = rc ? FAILED : (uint64_t)len;
    if (send_idle(&n, 1, MPI_UINT64_T, to, TAG_LEN) != 0)
        return -1;
    for (size_t at = 0; !rc && at < len; at += CHUNK) {
        size_t c = len - at < CHUNK ? len - at : CHUNK;
        if (send_idle(buf + at, (int)c, MPI_BYTE, to, TAG_DATA) != 0)
            return -1;
    }
    return 0;
}

/* One item's result from rank `from`: 0 and *buf (malloc'd), 1 when the owner failed it,
 * -1 on an MPI error. */
static int recv_item(int from, uint8_t **buf, size_t *len)
{
    uint64_t n;
    *buf = NULL;
    *len = 0;
    if (recv_idle(&n, 1, MPI_UINT64_T, from, TAG_LEN) != 0)
        return -1;
    if (n == FAILED)
        return 1;
    uint8_t *p = malloc(n ? (size_t)n : 1);
    if (!p) { /* the sender blocks on these bytes: end the job rather than hang it */
        fprintf(stderr, "malfam: out of memory receiving %llu bytes from rank %d\n",
                (unsigned long long)n, from);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return -1;
    }
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t c = n - at < CHUNK ? (size_t)n - at : CHUNK;
        if (recv_idle(p + at, (int)c, MPI_BYTE, from, TAG_DATA) != 0) {
            free(p);
            return -1;
        }
    }
    *buf = p;
    *len = (size_t)n;
    return 0;
}
#endif

int cli_mpi_gather(int n, const int *owner, cli_mpi_give_fn give, cli_mpi_take_fn take,
                   void *ud)
{
#ifdef MF_WITH_MPI
    if (g_size < 2)
        return 0;
    int status = 0;
    if (g_rank != 0) {
        for (int i = 0; i < n; i++) {
            if (owner[i] != g_rank)
                continue;
            uint8_t *buf = NULL;
            size_t len = 0;
            int rc = status || !give ? 1 : give(ud, i, &buf, &len); /* failed: markers only */
            if (rc)
                status = 1;
            if (send_item(rc, buf, len, 0) != 0)
                status = -1;
            free(buf);
        }
        return status;
    }
    for (int i = 0; i < n; i++) {
        if (owner[i] == 0)
            continue;
        uint8_t *buf;
        size_t len;
        int rc = recv_item(owner[i], &buf, &len);
        if (rc == 0 && !status)
            rc = take(ud, i, buf, len);
        free(buf);
        if (rc && !status) {
            fprintf(stderr, "malfam: item %d from rank %d failed\n", i, owner[i]);
            status = rc;
        }
    }
    return status;
#else
    (void)n;
    (void)owner;
    (void)give;
    (void)take;
    (void)ud;
    return 0;
#endif
}

int cli_mpi_share(const uint8_t *buf, size_t len, uint8_t ***all, size_t **lens)
{
    int n = g_size;
    uint8_t **a = calloc((size_t)n, sizeof *a);
    size_t *l = calloc((size_t)n, sizeof *l);
    uint64_t *l64 = calloc((size_t)n, sizeof *l64);
    int rc = -1;
    if (!a || !l || !l64)
        goto out;
    uint64_t mine = len;
#ifdef MF_WITH_MPI
    if (n > 1 && MPI_Allgather(&mine, 1, MPI_UINT64_T, l64, 1, MPI_UINT64_T, MPI_COMM_WORLD) !=
                     MPI_SUCCESS)
        goto out;
#endif
    l64[g_rank] = mine;
    for (int r = 0; r < n; r++) {
        l[r] = (size_t)l64[r];
        if (!(a[r] = malloc(l[r] ? l[r] : 1)))
            goto out;
    }
    if (len)
        memcpy(a[g_rank], buf, len);
#ifdef MF_WITH_MPI
    for (int r = 0; r < n && n > 1; r++)
        for (size_t at = 0; at < l[r]; at += CHUNK) {
            size_t c = l[r] - at < CHUNK ? l[r] - at : CHUNK;
            if (MPI_Bcast(a[r] + at, (int)c, MPI_BYTE, r, MPI_COMM_WORLD) != MPI_SUCCESS)
                goto out;
        }
#endif
    rc = 0;
out:
    if (rc != 0 && a)
        for (int r = 0; r < n; r++)
            free(a[r]);
    if (rc != 0) {
        free(a);
        free(l);
        a = NULL;
        l = NULL;
    }
    free(l64);
    *all = a;
    *lens = l;
    return rc;
}

int cli_mpi_post(const uint8_t *buf, size_t len)
{
#ifdef MF_WITH_MPI
    for (int r = 1; r < g_size; r++)
        if (send_item(0, buf, len, r) != 0)
            return -1;
#else
    (void)buf;
    (void)len;
#endif
    return 0;
}

int cli_mpi_wait_post(uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
#ifdef MF_WITH_MPI
    if (g_rank > 0)
        return recv_item(0, buf, len) == 0 ? 0 : -1;
#endif
    return -1;
}
