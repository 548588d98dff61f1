# Running a pipeline on a Slurm cluster: the same Make DAG, each stage a Slurm step or job.
# Slurm schedules; Make still decides what runs (content keys, the shared cache).
#
#   make slurm-report [PIPELINE=sweep] [SLURM_CPUS=16] [THREADS=2] [SBATCH_FLAGS="-p short -t 4:00:00 --mem=32G"]
#       one allocation of SLURM_CPUS CPUs (sbatch --wait); inside it
#         make -k -j<SLURM_CPUS/THREADS> pipeline-report RUN="srun --exact -n1 -c<THREADS> --quit-on-interrupt"
#       so every stage is a step on its own THREADS CPUs.  Waits; exits with the job's status.
#   make slurm-stages [STAGE_JOBS=32] [SRUN_FLAGS="-p short -t 30 --mem=4G"]
#       no allocation: this make runs where it is started (a login node) and every stage is
#       its own job, `srun -n1 -c<THREADS> ...`, for clusters whose stages need different
#       resources or where one large allocation waits too long in the queue.
#
# What a user sets: KD_CACHE on the shared filesystem (every node must see the same
# cache and the same checkout), SBATCH_FLAGS / SRUN_FLAGS for partition, time, memory and
# account.  On a cluster that tracks memory (SelectTypeParameters=CR_*_Memory) give the
# steps a share (SRUN_FLAGS=--mem=2G), otherwise a step asks for all of the job's memory
# and the steps run one at a time.  Other variables (SEEDS=..., EPOCHS=...) pass through
# to the pipeline as on `make report`.
#
# Included by the top Makefile (which builds the tools first), or on its own with built
# tools: make -f pipelines/slurm.mk slurm-report PIPELINE=sweep BUILD=/abs/build
#
# Pitfalls this file avoids (measured on slurm-wlm 22.05): a plain `srun` inside an
# allocation runs its steps one at a time, so --exact and -c; one Ctrl-C leaves running
# steps alive, so --quit-on-interrupt; make -j above the CPUs only queues steps.

KD_TOP       := $(patsubst %/,%,$(dir $(abspath $(dir $(lastword $(MAKEFILE_LIST))))))
PIPELINE     ?= seed
BUILD        ?= build
THREADS      ?= 1
SLURM_CPUS   ?= $(shell nproc 2>/dev/null || echo 2)
SBATCH_FLAGS ?=
SRUN_FLAGS   ?=
STAGE_JOBS   ?= $(SLURM_CPUS)
SLURM_LOG    ?= $(BUILD)/slurm-$(PIPELINE).log
# parallel stages in the allocation: its CPUs over each stage's threads, at least one
SLURM_JOBS    = $(shell n=$$(( $(SLURM_CPUS) / $(THREADS) )); echo $$(( n > 0 ? n : 1 )))

# the pipeline's own make, with the tools of BUILD and a RUN prefix (no rule to build them:
# inside an allocation nothing is compiled)
SLURM_PIPELINE = $(MAKE) --no-print-directory -f $(KD_TOP)/pipelines/$(PIPELINE).mk BUILD=$(abspath $(BUILD)) pipeline-report

slurm-check:
	@test -f $(KD_TOP)/pipelines/$(PIPELINE).mk || { echo "slurm: PIPELINE=$(PIPELINE): no pipelines/$(PIPELINE).mk" >&2; exit 2; }
	@command -v sbatch >/dev/null && command -v srun >/dev/null || \
	  { echo "slurm: no sbatch/srun on PATH (a Slurm client is needed: apt-get install slurm-client)" >&2; exit 2; }

# $(BINS) exists when the top Makefile included us: build the tools before submitting
# The job marks its end with SLURM_LOG.done only when the pipeline completed: sbatch --wait was
# seen to return 0 for a job scancel'd mid-run, so its status alone cannot say "finished".
slurm-report: slurm-check $(if $(BINS),deps all)
	@mkdir -p $(dir $(SLURM_LOG))
	@echo "slurm-report: one allocation of $(SLURM_CPUS) CPUs, $(SLURM_JOBS) stages at a time; log $(SLURM_LOG)"
	@rm -f $(abspath $(SLURM_LOG)).done; \
	  sbatch --wait --quiet --job-name=kdrec-$(PIPELINE) --chdir=$(CURDIR) -N1 -n1 -c$(SLURM_CPUS) $(SBATCH_FLAGS) \
	  --output=$(abspath $(SLURM_LOG)) \
	  --wrap='$(SLURM_PIPELINE) -k -j$(SLURM_JOBS) THREADS=$(THREADS) RUN="srun --exact -n1 -c$(THREADS) --quit-on-interrupt $(SRUN_FLAGS)" && : >$(abspath $(SLURM_LOG)).done'; \
	  s=$$?; cat $(SLURM_LOG); \
	  if [ $$s -eq 0 ] && [ ! -e $(abspath $(SLURM_LOG)).done ]; then \
	    echo "slurm-report: the job ended before the pipeline did (cancelled or killed): see $(SLURM_LOG)" >&2; s=1; fi; \
	  rm -f $(abspath $(SLURM_LOG)).done; exit $$s

slurm-stages: slurm-check $(if $(BINS),deps all)
	$(SLURM_PIPELINE) -k -j$(STAGE_JOBS) THREADS=$(THREADS) RUN="srun -n1 -c$(THREADS) --quit-on-interrupt $(SRUN_FLAGS)"

# Cost of a step: N trivial steps one after another inside one allocation, and N local
# runs of the same command.  Run on the cluster (the figures go into docs/slurm.md).
SLURM_N ?= 200
slurm-overhead: slurm-check
	@sbatch --wait --quiet --job-name=kdrec-overhead -N1 -n1 -c1 $(SBATCH_FLAGS) --output=$(abspath $(BUILD))/slurm-overhead.log \
	  --wrap='t0=$$(date +%s.%N); i=0; while [ $$i -lt $(SLURM_N) ]; do /bin/true; i=$$((i+1)); done; \
	    t1=$$(date +%s.%N); i=0; while [ $$i -lt $(SLURM_N) ]; do srun --exact -n1 -c1 /bin/true || exit 1; i=$$((i+1)); done; \
	    t2=$$(date +%s.%N); \
	    echo "$$t0 $$t1 $$t2" | awk "{ printf \"slurm-overhead: $(SLURM_N) steps: local %.4f s per step, srun %.4f s per step\n\", (\$$2-\$$1)/$(SLURM_N), (\$$3-\$$2)/$(SLURM_N) }"'; \
	  s=$$?; cat $(abspath $(BUILD))/slurm-overhead.log; exit $$s

.PHONY: slurm-check slurm-report slurm-stages slurm-overhead
