# The study on imported real data.  Either name a file:
#   make report PIPELINE=real DATA=ratings.csv FORMAT=csv [TEST=test.csv VALID=valid.csv] [IMPORT_FLAGS=...]
# or a shipped dataset from ../shared/data:
#   make report PIPELINE=real DATASET=lastfm      (LightGCN adjacency files, given splits)
#   make report PIPELINE=real DATASET=citeulike   (triples, given splits)
# Seeds vary the training (and, without TEST, the random split).  Outputs go under
# data/real-<name>-t<teacher dim>-s<student dim>/.
PIPELINE     := real
BUILD        ?= build
SHARED_DATA  ?= $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../../shared/data)
IMPORT_FLAGS ?=

ifeq ($(DATASET),lastfm)
DATA   := $(SHARED_DATA)/lastfm/train.txt
TEST   := $(SHARED_DATA)/lastfm/test.txt
VALID  := $(SHARED_DATA)/lastfm/valid.txt
FORMAT := adj
else ifeq ($(DATASET),citeulike)
DATA   := $(SHARED_DATA)/citeulike/train.txt
TEST   := $(SHARED_DATA)/citeulike/test.txt
VALID  := $(SHARED_DATA)/citeulike/valid.txt
FORMAT := triples
endif
ifeq ($(strip $(DATA)),)
$(error PIPELINE=real needs DATA=path and FORMAT=tsv|csv|adj|triples, or DATASET=lastfm|citeulike)
endif
ifeq ($(wildcard $(DATA)),)
$(error DATA=$(DATA): no such file (for DATASET=lastfm|citeulike, ../shared/data must be present))
endif
FORMAT ?= tsv
NAME   ?= $(if $(DATASET),$(DATASET),$(basename $(notdir $(DATA))))
PDIR   ?= data/real-$(NAME)-t$(or $(TEACHER_DIM),64)-s$(or $(STUDENT_DIM),32)

# with given splits the seed changes nothing in the data; without, it draws the split
split_flags = $(if $(TEST),--test $(TEST) $(if $(VALID),--valid $(VALID)),--seed $(1))

define real_data
$$(eval $$(call kd_args,$(PDIR)/s$(1)/.args/data,import --format $(FORMAT) $(IMPORT_FLAGS) $(call split_flags,$(1)) $(DATA)))
$(PDIR)/s$(1)/data.kd: $(PDIR)/s$(1)/.args/data $$(BUILD)/bin/kd-gen $(DATA) $(TEST) $(VALID)
	$$(BUILD)/bin/kd-gen $$(ARGS.$(PDIR)/s$(1)/.args/data) --cache $$(KD_CACHE) --label "data $(NAME) seed=$(1)" -o $$@
endef

include $(dir $(lastword $(MAKEFILE_LIST)))study.mk
$(foreach s,$(SEEDS),$(eval $(call real_data,$(s))))
