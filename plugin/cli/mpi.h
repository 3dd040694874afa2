/* mpi.h - independent work items over MPI ranks, results gathered at rank 0.
 *
 * The whole distribution layer of `malfam train`: every rank runs the same command on the same
 * inputs, cli_mpi_assign gives each item (a family's LSTM; per-class fits and calibration folds
 * fit the same shape) to one rank by cost, every rank does its own items, and cli_mpi_gather
 * brings each item's result bytes to rank 0, which alone writes the output. Items are
 * independent and deterministic, so the result does not depend on the number of ranks.
 *
 * Built without MPI (make MPI=0, or no Open MPI found), or run without mpirun, there is one
 * rank and every call is trivial: MPI_Init only runs when mpirun launched the process, so a
 * plain run stays as fast and quiet as a build without MPI. libmalfam never sees MPI.
 */
#ifndef MF_CLI_MPI_H
#define MF_CLI_MPI_H

#include <stddef.h>
#include <stdint.h>

/* Join the MPI job when mpirun (or another PMIx launcher) started this process. 0, or -1
 * after printing why. Call once, before anything else of this file. */
int cli_mpi_start(void);

/* Leave the job (MPI_Finalize) when cli_mpi_start joined one. status != 0 with more than one
 * rank aborts the whole job instead, so that no rank waits forever for a failed one. */
void cli_mpi_end(int status);

int cli_mpi_rank(void); /* 0 when not under mpirun */
int cli_mpi_size(void); /* 1 when not under mpirun */
int cli_mpi_built(void); /* 1 when this build has MPI support */

/* owner[i] for n items of cost[i] (>= 0) over the ranks: the costliest item first, each to the
 * least loaded rank (ties: the lower item index, the lower rank). Deterministic, so every rank
 * computes the same table without talking. */
void cli_mpi_assign(const double *cost, int n, int *owner);

/* Each rank produces the result of each item it owns, in item order: give() sets *buf
 * (malloc'd; freed here) and *len, returning 0, or nonzero when the item failed (give NULL:
 * this rank failed, all its items are reported failed, so rank 0 still hears of each). Rank 0 then
 * gets every other rank's results in item order through take(); its own items it keeps as
 * they are (give is not called there). Returns 0 on every rank when all items succeeded and
 * take accepted them; nonzero (on rank 0: the first failure) otherwise. With one rank: 0. */
typedef int (*cli_mpi_give_fn)(void *ud, int item, uint8_t **buf, size_t *len);
typedef int (*cli_mpi_take_fn)(void *ud, int item, const uint8_t *buf, size_t len);
int cli_mpi_gather(int n, const int *owner, cli_mpi_give_fn give, cli_mpi_take_fn take,
                   void *ud);

/* Every rank's bytes to every rank (a shard of the input each rank read, say): all[r] and
 * lens[r] for r < cli_mpi_size() get rank r's buf and len (all[r] malloc'd, also this rank's
 * own copy; free each and both arrays). 0, or -1 (no memory, MPI error; the job cannot go
 * on: cli_mpi_end aborts it). With one rank: a copy of buf. */
int cli_mpi_share(const uint8_t *buf, size_t len, uint8_t ***all, size_t **lens);

/* Rank 0's bytes to every other rank, which wait for them sleeping, not spinning, however
 * long rank 0 works before posting (cli_mpi_share's collective would spin): rank 0 calls
 * cli_mpi_post, every other rank cli_mpi_wait_post (*buf malloc'd, free it). 0, or -1 (MPI
 * error; with one rank post does nothing and wait_post fails). */
int cli_mpi_post(const uint8_t *buf, size_t len);
int cli_mpi_wait_post(uint8_t **buf, size_t *len);

#endif
