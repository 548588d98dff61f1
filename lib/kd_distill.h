/* kd_distill: distillation losses from a teacher MF model into a student, as kd_sgd tasks
 * that run beside (or modify) the student's own BPR task.
 *
 *   margin-mse  a loss on each BPR triple (u, i, j), Δs = s_ui - s_uj, Δt the teacher's:
 *               convex: (1-α)·BPR + α·T²·KD;  add: BPR + λ·T²·KD, KD one of (--margin-loss):
 *               mse   the study's (the notebook's): KD = (Δs/T - Δt/T)²; T²·KD = (Δs - Δt)²,
 *                     the temperature cancels (computed literally, so the tests can show it).
 *                     Its gradient 2α·(Δs - Δt) grows without bound and its curvature in Δs
 *                     is 2α, 8α times BPR's largest (1/4): at BPR's rate 0.05 α = 0.5 diverges.
 *               soft  (the default) the pairwise soft target: KD = KL(σ(Δt/T) || σ(Δs/T)),
 *                     the teacher's probability that i beats j against the student's (Hinton's
 *                     soft targets on the 2-way softmax of (s_ui, s_uj); the pairwise KL of Lin
 *                     et al., TCT-ColBERT, 2021).  d(T²·KD)/dΔs = T·(σ(Δs/T) - σ(Δt/T)),
 *                     bounded by T, curvature σ'(Δs/T) <= 1/4 like BPR's at any T; at T = 1
 *                     the convex mix is BPR on a soft label, (1-α) + α·σ(Δt), so no α makes
 *                     it stiffer than plain BPR.  As T grows T²·KD -> (Δs - Δt)²/8: margin-MSE
 *                     is its high-temperature limit.  A BPR teacher's margins are log-odds in
 *                     the student's units (measured: mean 3-4, sd 1.2-1.4 on synth, Last.fm,
 *                     CiteULike, like the plain student's), so σ(Δt) needs no rescaling.
 *   rd          Ranking Distillation (Tang & Wang, KDD 2018): the teacher's top-K unobserved
 *               items of a user as extra positives with weights w_r ∝ exp(-r/λ_r) (static),
 *               times tanh(max(μ·(r̂ - r), 0)) with the student's sampled rank estimate r̂
 *               (--dynamic).  For a BPR student each one is a BPR pair against a sampled
 *               negative: λ·Σ_r w_r·(-log σ(s_{u,π_r} - s_{u,j_r})), weights summing to 1.
 *   rrd         Relaxed Ranking Distillation (Kang et al., CIKM 2020): Plackett-Luce
 *               likelihood of the teacher's top-K order, with L uniformly sampled
 *               uninteresting items (not train positives, not in the teacher's top-M) in
 *               every denominator:  λ·Σ_k [log(Σ_{l≥k} e^{s_l} + Σ_j e^{s_j}) - s_k].
 *               Closed-form gradients in O(K + L) per user via suffix sums.
 *   ce          softmax cross-entropy between teacher and student over every unobserved item:
 *               λ·τ²·(-Σ_i p_t(i) log p_s(i)), p = softmax(score/τ); exact, O(items·dim) per
 *               user per epoch.  For large catalogues (more than KD_CE_EXACT_MAX items, or
 *               --ce-sample S) a sampled softmax: the teacher's top-M plus S uniform samples of
 *               the other unobserved items, each standing for (rest / S) items (log-weight
 *               added to both logits), O((M + S)·dim) per user.
 *   dcd         Dual Correction Distillation (Lee & Kim, CIKM 2021), user side: each epoch
 *               the student's own top-M is recomputed; from the teacher's top-K, items the
 *               student under-ranks are sampled with probability ∝ exp(tanh(ε·(r_s - r_t))),
 *               from the student's top-K items the teacher ranks lower are sampled likewise
 *               (over-estimated), and a Plackett-Luce loss puts the under-estimated ones,
 *               in teacher order, above the over-estimated ones and L uniform samples.
 *   dcd-item    the item side of DCD (as IR-RRD does for RRD): the same lists and loss for
 *               each item over users -- the teacher's and the student's top-M users of the
 *               item (train users excluded), under- and over-estimated users, L uniform
 *               users -- as transposed units (kd_sgd.h), one per item an epoch.  Scores
 *               include b_u, which this loss (alone) moves; b_i gets no gradient.
 *   dcd2        DCD as published, both sides: dcd + λ_I·dcd-item (--item-lambda).
 *   rce         RCE-KD (Zhu & Zhang, arXiv 2509.20989; definitions from the paper and the
 *               authors' code, woriazzc/RCEKD): per user, each epoch, S = the student's
 *               top-K, Q = the teacher's top-K, I = L positions of the student's top-M drawn
 *               without replacement with weights exp(min(c_j, 50)/T), c_j the number of
 *               teacher top-K items at student rank >= j (an approximately closed set);
 *               A = I + (Q outside I and S); w = exp(-β·|Q ∩ I|/K);
 *               loss λ·[(1-w)·CE_S + w·CE_A], CE_X the softmax cross-entropy at temperature
 *               τ of teacher against student over X (no τ² factor, as the authors' code).
 *               Train items are excluded from every list (the authors' code keeps them).
 *               One unit per train interaction, on BPR's own draws (the authors add the
 *               term per batch entry: user u n_u times an epoch).
 *   rce2        both sides: rce (its lists, weight λ) + λ_I·dcd-item (--item-lambda) at
 *               dcd's default lists (K 20, L 20, M 100, ε): rce corrects each user's
 *               ranking of items, dcd-item each item's ranking of users, a signal no user
 *               side sees (kdrec's combination, not a published method).
 *
 * Every per-user term (rce: per-interaction) is a separate unit (one per user per epoch,
 * dcd-item's one per item) interleaved with the BPR units, with random numbers from (seed, epoch, user): bit-identical for any threads.
 * The stream tags are kd_rng.h's (enum kd_unit_stream, kd_draw).
 *
 * --refresh R (dcd, dcd-item, dcd2, rce, rce2; kd_distill_params.refresh): ranking the student
 * is most of an epoch of these methods at benchmark scale (amazon-book: 70-80% of a dcd
 * epoch), so with R > 1 an epoch re-ranks only the rows r (users; items on the item side)
 * with r % R == epoch % R, and epoch 0 ranks them all.  A row's ranking is then up to R-1
 * epochs old.  Everything derived from a ranking is derived from the one the row holds:
 * dcd's under/over-estimated sets are drawn in the unit from it, and rce's lists (S, the
 * sampled I, A, w and the teacher's softmax over them) are rebuilt every epoch for every
 * user from it, with the epoch's draws -- only the ranking is stale, never the sampling.
 *
 * The methods are a table, kd_distill_methods[]: a row names the method and its knob and
 * points to its functions (defaults, provenance, preparation, task).  Adding a method is
 * adding a row -- its enum kd_method name, the row in kd_distill.c, its functions -- and
 * its flags in kd-distill's --help; nothing else dispatches on the method.
 */
#ifndef KD_DISTILL_H
#define KD_DISTILL_H

#include <stdint.h>

#include "kd_bpr.h"
#include "kd_dataset.h"
#include "kd_model.h"
#include "kd_sgd.h"

enum kd_method { KD_MARGIN_MSE, KD_RD, KD_RRD, KD_CE, KD_DCD, KD_DCD_ITEM, KD_DCD2, KD_RCE, KD_RCE2, KD_N_METHODS }; /* rows */
int kd_method_parse(const char *name); /* enum kd_method or -1 */

/* margin-mse's term (--margin-loss; kd_distill_params.margin_loss) */
enum kd_margin_loss { KD_MLOSS_SOFT, KD_MLOSS_MSE };

typedef struct kd_distill_params {
    int      method;
    double   alpha, temperature; /* margin-mse */
    int      mix_add;            /* margin-mse: BPR + λ·KD instead of the convex mix */
    int      margin_loss;        /* margin-mse: enum kd_margin_loss [KD_MLOSS_SOFT] */
    double   lambda;             /* weight of the distillation term */
    uint32_t K, L, M;            /* top-K list, uninteresting samples, teacher top-M */
    double   rank_temp;          /* rd: λ_r of the position weights */
    int      dynamic;            /* rd: dynamic weighting */
    double   mu;                 /* rd: dynamic weight sharpness */
    double   tau;                /* ce: softmax temperature */
    double   eps;                /* dcd: discrepancy sensitivity */
    uint32_t ce_sample;          /* ce: 0 = exact over all items; S > 0 = the teacher's top-M
                                  * plus S uniform samples (a sampled softmax) */
    double   item_lambda;        /* dcd2, rce2: weight of the item side */
    double   beta;               /* rce: sharpness of the mixing weight w = exp(-β·overlap) */
    int      kd_decay;           /* 1: weight decay on the distillation records' rows, as BPR's
                                  * (the older methods' default, kept so their models do not
                                  * change); 0: none (rce, rce2, dcd-item, dcd2: at zero weight they
                                  * train plain BPR's model bit for bit).  Provenance says
                                  * kd_decay=0 when off, nothing when on. */
    uint32_t refresh;            /* dcd, dcd-item, dcd2, rce, rce2: re-rank the student's rows r with
                                  * r % refresh == epoch % refresh each epoch (all of them at
                                  * epoch 0), the others keep their last ranking; 1: every
                                  * row every epoch (the default, but dcd's is 4, chosen by
                                  * measurement: kd_distill.c).  Provenance says
                                  * refresh=R when R > 1, nothing at 1. */
    /* --lambda auto (--alpha auto for margin-mse): the knob chosen on the validation split
     * among auto_grid[0..auto_n) by kd_distill_train_auto; 0: the knob as given */
    int      auto_n;
    double   auto_grid[8];
} kd_distill_params;

#define KD_AUTO_MAX 8
/* The default grids of --lambda auto (zero included, trained as plain BPR, kd-train's model:
 * the tool never picks a weight that validates worse than no distillation) and margin-mse's --alpha auto: under
 * --margin-loss mse the pipelines' values (alpha 0.5 diverges at lr 0.05 on the synthetic
 * default), under soft (which cannot diverge) the whole range of the mix */
#define KD_AUTO_LAMBDAS    { 0, 0.1, 0.3, 1 }
#define KD_AUTO_ALPHAS     { 0, 0.03, 0.1, 0.3 }
#define KD_AUTO_ALPHAS_SOFT { 0, 0.25, 0.5, 1 }
/* the knob used under auto without a validation split (nothing to choose on): the
 * method's fixed default; margin-mse's alpha this under mse (0.5 diverges, see above)
 * and the notebook's 0.5 under soft */
#define KD_NO_VALID_ALPHA      0.1
#define KD_NO_VALID_ALPHA_SOFT 0.5

/* --refresh R is 1..KD_REFRESH_MAX */
#define KD_REFRESH_MAX 64u

/* Gumbel selections draw from at most this many candidates (rce: --topm) */
#define KD_PICK_MAX 1024u

/* ce is exact up to this many items; above it samples by default */
#define KD_CE_EXACT_MAX 4096u

/* Per-method defaults (documented in kd-distill --help); the knob fixed (auto_n 0). */
kd_distill_params kd_distill_defaults(int method);
/* Sets p's knob to auto over the default grid of its method (or mix). */
void kd_distill_set_auto(kd_distill_params *p);
/* Sets the value of p's knob (alpha, or lambda). */
void kd_distill_set_knob(kd_distill_params *p, double v);

typedef struct kd_distill kd_distill;

/* A row of the method table. */
typedef struct kd_distill_method {
    const char *name;     /* --method NAME: provenance's method=, the stage's role=distill-NAME */
    const char *knob;     /* the parameter the study sweeps over ("alpha", "lambda") */
    /* its defaults, over the shared ones (NULL: none of its own) */
    void (*defaults)(kd_distill_params *p);
    /* its parameters' provenance lines (after method=) */
    int  (*prov)(const kd_distill_params *p, kd_buf *b);
    /* once before training, after the shared checks: the teacher's lists or scores it
     * needs (NULL: none) */
    int  (*prepare)(kd_distill *k, kd_err *e);
    /* its tasks: tasks[0] is the student's BPR, which it may replace (margin-mse) or add
     * to; returns the number of tasks.  Scratch sizes come from kd_distill.c's one
     * layout (list_layout). */
    int  (*tasks)(kd_distill *k, kd_sgd_task *tasks);
    /* it ranks the student each epoch (dcd, dcd-item, dcd2, rce), so --refresh applies */
    int  ranks_student;
    /* its item side, the lists of users per item (kd_distill_init sizes them and checks
     * them against the users) */
    enum kd_item_side {
        KD_ITEM_NONE,     /* none */
        KD_ITEM_MAIN,     /* dcd-item: its own --topk/--uninteresting/--topm, at --lambda */
        KD_ITEM_ADDED,    /* dcd2: the same lists as its user side's, at --item-lambda */
        KD_ITEM_DEFAULTS  /* rce2: dcd-item's default lists (its --topk etc. are its user
                           * side's), at --item-lambda */
    } item_side;
    /* its user side is rce's sampled lists (rce, rce2): --samples and --topm checked */
    int  rce_lists;
} kd_distill_method;

extern const kd_distill_method kd_distill_methods[KD_N_METHODS];

/* Usage error unless p->refresh is 1..KD_REFRESH_MAX, and 1 for a method that does not
 * rank the student (kd_distill_init checks it too; a tool checks it before loading data). */
int kd_distill_check_refresh(const kd_distill_params *p, kd_err *e);

/* The knob a model was distilled with: its name (the row's, or "lambda" under --mix add)
 * and *value. */
const char *kd_distill_knob(const kd_distill_params *p, double *value);

struct kd_distill {
    kd_distill_params p;
    const kd_dataset *d;
    const kd_model *teacher;
    kd_bpr *bpr;
    uint64_t seed;
    uint32_t *t_items;   /* (n_users, M) teacher's ranked unobserved items */
    float    *t_scores;  /* (n_users, M) */
    float    *t_all;     /* ce: (n_users, items_pad) every teacher score, when it fits in memory */
    uint32_t  t_all_stride;
    uint32_t *s_items;   /* dcd, rce: (n_users, M) the student's, re-ranked each epoch (--refresh R:
                          * a row every R epochs) */
    float    *s_scores;
    /* item side (dcd-item, dcd2, rce2): the transposed train split (items x users, valid
     * and test empty) and the teacher's and student's top-Mi users of each item, (n_items,
     * Mi); its lists' K and L are iK, iL (the method row's item_side says whose) */
    kd_dataset dT;
    uint32_t  Mi, iK, iL;
    uint32_t *ti_users, *si_users; /* si_users re-ranked as s_items */
    float    *ti_scores, *si_scores;
    /* rce: each user's lists of the epoch, (n_users, 2K+L) entries: item and membership
     * (bit 0: in S, bit 1: in A); rce_n[u] entries, mixing weight rce_w[u]; rce_p the
     * teacher's softmax over S (the first |S| cells of the row), then over A */
    uint32_t *rce_items, *rce_n;
    double   *rce_p;
    uint8_t  *rce_in;
    double   *rce_w;
    size_t    rce_off;   /* scratch bytes BPR's sampling keeps before rce's */
    int       threads;
    double    rank_seconds; /* measured: time of the one teacher ranking pass (for --verbose) */
};

/* Checks the teacher against the dataset and computes its top-M lists (M is capped at
 * the number of items; k->p holds the parameters as used). */
int  kd_distill_init(kd_distill *k, const kd_distill_params *p, const kd_dataset *d, const kd_model *teacher,
                     kd_bpr *bpr, uint64_t seed, int threads, kd_err *e);
void kd_distill_free(kd_distill *k);

/* The tasks to train with: BPR (possibly modified) and the distillation term. */
int kd_distill_tasks(kd_distill *k, kd_sgd_task *tasks, int *ntasks);

/* Provenance lines of the method's parameters. */
int kd_distill_prov(const kd_distill_params *p, kd_buf *b);

/* margin-mse loss of one triple with student margin x and teacher margin dt (p->margin_loss's
 * term, the mix of p->mix_add); *dl = dLoss/dx.  With alpha = 0 (convex) it is exactly
 * BPR's (kd_bpr_grad): *dl = -g. */
double kd_margin_loss(const kd_distill_params *p, float x, double dt, double *dl);

/* Loss and gradient of the per-user listwise terms, exposed for the gradient tests:
 * s[0..K) interesting in order, s[K..K+L) uninteresting; fills g = dLoss/ds. */
double kd_rrd_loss(const float *s, uint32_t K, uint32_t L, double *g);
/* Cross-entropy of teacher t and student s scores over n items at temperature tau;
 * fills g = dLoss/ds (without the τ² factor). */
double kd_ce_loss(const float *t, const float *s, uint32_t n, double tau, double *g);
/* rce's per-user loss (1-w)·CE(tS, sS) + w·CE(tA, sA) at temperature tau; fills gS, gA
 * with its gradients over the two sets (an item in both gets gS + gA). */
double kd_rce_loss(const float *tS, const float *sS, uint32_t nS, const float *tA, const float *sA, uint32_t nA,
                   double w, double tau, double *gS, double *gA);

/* The mean of n teachers' scores as one MF model: user rows concat(p^m_u / n), item rows
 * concat(q^m_i), biases the means; dim = sum of dims (<= KD_MAX_DIM).  n = 1 gives the
 * teacher back bit for bit.  Every teacher must have the same users and items. */
int kd_distill_ensemble(kd_model *out, const kd_model *ts, int n, kd_err *e);

/* How --lambda auto went: the best validation value of each candidate (NAN: it diverged)
 * and the index of the one kept. */
typedef struct kd_distill_choice {
    int    n, chosen;
    double valid[KD_AUTO_MAX];
} kd_distill_choice;

struct kd_train_opts;
struct kd_train_log;
/* --lambda auto: trains m once per value of k->p.auto_grid with early stopping (o, which
 * must validate: o->valid_every > 0), each from m as given (initialised) and the same
 * random streams, and keeps the model and log of the value
 * whose best validation is highest (ties: the earlier value).  A value whose training
 * diverges is skipped (valid NAN); all of them diverging is an error.  Sets k->p's knob to
 * the value chosen.  The result is the model an explicit run at that value gives, bit
 * for bit (tests/kd-distill.bats). */
int kd_distill_train_auto(kd_distill *k, const struct kd_train_opts *o, kd_model *m, const kd_dataset *d,
                          kd_distill_choice *ch, struct kd_train_log *log, kd_err *e);
/* Provenance of the choice: result.<knob>=V and result.auto.<i>=valid value (or diverged). */
int kd_distill_prov_choice(const kd_distill_params *p, const kd_distill_choice *ch, kd_buf *b);

#endif
