/* libFuzzer harness: the artifact reader, and the dataset and model loaders over it.
 * Every input must give either a verified artifact or a clean error: never a crash, a
 * leak, undefined behaviour or an allocation the bytes cannot justify. */
#include <stddef.h>
#include <stdint.h>

#include "kd_artifact.h"
#include "kd_dataset.h"
#include "kd_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kd_err e;
    kd_art *a = NULL;
    if (kd_art_parse(data, size, "fuzz", &a, &e) == 0) {
        if (a->kind == KD_KIND_DATASET) {
            kd_dataset d;
            if (kd_dataset_from_art(&d, a, &e) == 0) kd_dataset_free(&d);
        } else if (a->kind == KD_KIND_MODEL) {
            kd_model m;
            if (kd_model_from_art(&m, a, &e) == 0) kd_model_free(&m);
        }
        char buf[64];
        kd_art_prov_get(a, "tool", buf, sizeof buf);
        kd_art_free(a);
    }
    return 0;
}
