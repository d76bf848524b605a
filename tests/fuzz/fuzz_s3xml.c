/* libFuzzer target: S3 XML replies (listing, errors, multipart,
 * DeleteObjects, ListParts), the first byte choosing the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "storage/s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data + 1;
    struct wk_err err;

    if (size < 1)
        return 0;
    size--;
    wk_err_clear(&err);
    switch (data[0] % 7) {
    case 0: {
        struct s3_xml_list l;
        if (s3_xml_parse_list(p, size, &l, &err) == WK_OK)
            s3_xml_list_release(&l);
        break;
    }
    case 1: {
        struct s3_xml_error e;
        (void)s3_xml_parse_error(p, size, &e, &err);
        break;
    }
    case 2: {
        char *id = NULL;
        if (s3_xml_parse_initiate(p, size, &id, &err) == WK_OK)
            free(id);
        break;
    }
    case 3: {
        char etag[S3_XML_ETAG_MAX];
        (void)s3_xml_parse_complete(p, size, etag, &err);
        break;
    }
    case 4: {
        struct s3_xml_delete d;
        if (s3_xml_parse_delete(p, size, &d, &err) == WK_OK)
            s3_xml_delete_release(&d);
        break;
    }
    case 5: {
        struct s3_xml_uploads u;
        if (s3_xml_parse_uploads(p, size, &u, &err) == WK_OK)
            s3_xml_uploads_release(&u);
        break;
    }
    default: {
        struct s3_xml_parts l;
        if (s3_xml_parse_parts(p, size, &l, &err) == WK_OK)
            s3_xml_parts_release(&l);
        break;
    }
    }
    return 0;
}
