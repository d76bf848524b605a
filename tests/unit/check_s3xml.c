#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3_xml.h"
#include "tests/unit/suites.h"

#define XML_HDR "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_NS   "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static const char list_page[] = XML_HDR
    "<ListBucketResult " S3_NS ">"
    "<Name>bucket</Name><Prefix>ws/</Prefix><KeyCount>3</KeyCount>"
    "<MaxKeys>3</MaxKeys><Delimiter>/</Delimiter>"
    "<IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
    "</NextContinuationToken>"
    "<Contents><Key>ws/a.json</Key>"
    "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>"
    "<Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>\n"
    "  <Contents>\n    <Key>ws/b.bin</Key>\n"
    "    <LastModified>2024-01-15T10:20:30Z</LastModified>\n"
    "    <ETag>\"9b2cf535f27731c974343645a3985328-3\"</ETag>\n"
    "    <Size>0</Size>\n  </Contents>\n"
    "<CommonPrefixes><Prefix>ws/photos/</Prefix></CommonPrefixes>"
    "</ListBucketResult>";

START_TEST(test_s3xml_list_page)
{
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(list_page, strlen(list_page), &l, &err),
                     WK_OK);
    ck_assert_uint_eq(l.n_objects, 2);
    ck_assert_str_eq(l.objects[0].key, "ws/a.json");
    ck_assert(l.objects[0].size == 434234);
    ck_assert(l.objects[0].mtime == 1255369830);
    ck_assert_str_eq(l.objects[0].etag, "fba9dede5f27731c9771645a39863328");
    ck_assert_str_eq(l.objects[1].key, "ws/b.bin");
    ck_assert(l.objects[1].size == 0);
    ck_assert(l.objects[1].mtime == 1705314030);
    ck_assert_str_eq(l.objects[1].etag, "9b2cf535f27731c974343645a3985328-3");
    ck_assert_uint_eq(l.n_prefixes, 1);
    ck_assert_str_eq(l.prefixes[0], "ws/photos/");
    ck_assert(l.is_truncated);
    ck_assert_str_eq(l.next_token,
                     "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    ck_assert(l.key_count == 3);
    ck_assert(!l.url_encoded);
    s3_xml_list_release(&l);
    ck_assert_ptr_null(l.objects);
    s3_xml_list_release(&l); /* twice is harmless */
}
END_TEST

START_TEST(test_s3xml_list_last_page)
{
    static const char body[] =
        XML_HDR "<ListBucketResult " S3_NS "><Name>b</Name><Prefix></Prefix>"
                "<KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
                "<IsTruncated>false</IsTruncated></ListBucketResult>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, strlen(body), &l, &err), WK_OK);
    ck_assert_uint_eq(l.n_objects, 0);
    ck_assert_uint_eq(l.n_prefixes, 0);
    ck_assert(!l.is_truncated);
    ck_assert_ptr_null(l.next_token);
    s3_xml_list_release(&l);
}
END_TEST

START_TEST(test_s3xml_list_url_encoded)
{
    /* S3 encodes a space as '+' and a plus as %2B; the token is not
     * encoded */
    static const char body[] = XML_HDR
        "<ListBucketResult " S3_NS "><Name>b</Name>"
        "<Prefix>t%2Fx%20y%2F</Prefix><KeyCount>2</KeyCount>"
        "<IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>"
        "<NextContinuationToken>a+b%2F</NextContinuationToken>"
        "<Contents><Key>t/x+y/sp+ace%2Bplus%3Deq~%C3%BCn%C3%AF.txt</Key>"
        "<Size>1</Size><ETag>\"e\"</ETag>"
        "<LastModified>2024-01-15T10:20:30Z</LastModified></Contents>"
        "<CommonPrefixes><Prefix>t/x%20y/d%26r/</Prefix></CommonPrefixes>"
        "</ListBucketResult>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, strlen(body), &l, &err), WK_OK);
    ck_assert(l.url_encoded);
    ck_assert_str_eq(l.objects[0].key,
                     "t/x y/sp ace+plus=eq~\xc3\xbcn\xc3\xaf.txt");
    ck_assert_str_eq(l.prefixes[0], "t/x y/d&r/");
    ck_assert_str_eq(l.next_token, "a+b%2F");
    s3_xml_list_release(&l);
}
END_TEST

START_TEST(test_s3xml_list_entities)
{
    static const char body[] =
        XML_HDR "<ListBucketResult " S3_NS "><IsTruncated>false</IsTruncated>"
                "<Contents><Key>a &amp; b &lt;c&gt; &#x4E2D;&#25991; &apos;"
                "q&quot; </Key><Size>7</Size></Contents></ListBucketResult>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, strlen(body), &l, &err), WK_OK);
    /* keys keep their spaces: no trimming */
    ck_assert_str_eq(l.objects[0].key,
                     "a & b <c> \xe4\xb8\xad\xe6\x96\x87 'q\" ");
    s3_xml_list_release(&l);
}
END_TEST

START_TEST(test_s3xml_list_error_document)
{
    static const char body[] =
        XML_HDR "<Error><Code>AccessDenied</Code><Message>Access Denied"
                "</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, strlen(body), &l, &err),
                     WK_E_HTTP);
    ck_assert_str_eq(err.s3_code, "AccessDenied");
    ck_assert_str_eq(err.msg, "S3 error AccessDenied: Access Denied");
    ck_assert_ptr_null(l.objects);
}
END_TEST

START_TEST(test_s3xml_truncated_refused)
{
    struct s3_xml_list l;
    struct wk_err err;
    size_t cut = strlen(list_page) / 2;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(list_page, cut, &l, &err), WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "malformed S3 XML reply at line"));
    ck_assert_ptr_null(l.objects);
    ck_assert_uint_eq(l.n_objects, 0);
}
END_TEST

START_TEST(test_s3xml_malformed_refused)
{
    static const char body[] =
        "<ListBucketResult><Contents><Key>a</Size></Contents>"
        "</ListBucketResult>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, strlen(body), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "mismatched tag"));
}
END_TEST

START_TEST(test_s3xml_empty_body_refused)
{
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list("", 0, &l, &err), WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "malformed S3 XML"));
}
END_TEST

START_TEST(test_s3xml_wrong_root_refused)
{
    static const char body[] =
        "<InitiateMultipartUploadResult><UploadId>x</UploadId>"
        "</InitiateMultipartUploadResult>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, strlen(body), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_str_eq(
        err.msg,
        "unexpected root element 'InitiateMultipartUploadResult' in S3 reply");
}
END_TEST

START_TEST(test_s3xml_bad_values_refused)
{
    static const char size[] =
        "<ListBucketResult><Contents><Key>a</Key><Size>12x</Size>"
        "</Contents></ListBucketResult>";
    static const char trunc[] =
        "<ListBucketResult><IsTruncated>maybe</IsTruncated>"
        "</ListBucketResult>";
    static const char date[] =
        "<ListBucketResult><Contents><Key>a</Key><LastModified>yesterday"
        "</LastModified></Contents></ListBucketResult>";
    static const char nokey[] =
        "<ListBucketResult><Contents><Size>1</Size></Contents>"
        "</ListBucketResult>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(size, strlen(size), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "bad number '12x' in S3 XML reply");
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(trunc, strlen(trunc), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "bad boolean 'maybe' in S3 XML reply");
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(date, strlen(date), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "bad LastModified 'yesterday' in S3 listing");
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(nokey, strlen(nokey), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "S3 listing entry without a Key");
}
END_TEST

START_TEST(test_s3xml_huge_value_refused)
{
    size_t n = S3_XML_MAX_TEXT + 100;
    char *body = malloc(n + 200);
    struct s3_xml_list l;
    struct wk_err err;
    size_t len;

    ck_assert_ptr_nonnull(body);
    len = (size_t)snprintf(body, 200, "<ListBucketResult><Contents><Key>");
    memset(body + len, 'k', n);
    len += n;
    len += (size_t)snprintf(body + len, 200,
                            "</Key></Contents></ListBucketResult>");
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, len, &l, &err), WK_E_LIMIT);
    ck_assert_str_eq(err.msg, "S3 XML text value longer than 16384 bytes");
    ck_assert_ptr_null(l.objects);
    free(body);
}
END_TEST

START_TEST(test_s3xml_body_over_cap_refused)
{
    size_t n = (size_t)S3_XML_MAX_BODY + 1;
    char *body = calloc(1, n);
    struct s3_xml_list l;
    struct wk_err err;

    ck_assert_ptr_nonnull(body);
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, n, &l, &err), WK_E_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "is over the limit of"));
    free(body);
}
END_TEST

START_TEST(test_s3xml_depth_refused)
{
    char body[1024];
    size_t len = 0;
    struct s3_xml_list l;
    struct wk_err err;

    len +=
        (size_t)snprintf(body + len, sizeof(body) - len, "<ListBucketResult>");
    for (int i = 0; i < S3_XML_MAX_DEPTH + 2; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "<a>");
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, len, &l, &err), WK_E_LIMIT);
    ck_assert_str_eq(err.msg, "S3 XML nested deeper than 16 elements");
}
END_TEST

START_TEST(test_s3xml_doctype_refused)
{
    static const char body[] =
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
        "<ListBucketResult><Contents><Key>&lol2;</Key></Contents>"
        "</ListBucketResult>";
    struct s3_xml_list l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_list(body, strlen(body), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "S3 XML with a DOCTYPE ('lolz') refused");
}
END_TEST

START_TEST(test_s3xml_error_document)
{
    static const char body[] =
        XML_HDR "<Error>\n  <Code>SlowDown</Code>\n  <Message>Please reduce "
                "your request rate.</Message>\n  <RequestId>4442587FB7D0A2F9"
                "</RequestId>\n  <HostId>abc=</HostId>\n</Error>";
    struct s3_xml_error e;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_error(body, strlen(body), &e, &err), WK_OK);
    ck_assert_str_eq(e.code, "SlowDown");
    ck_assert_str_eq(e.message, "Please reduce your request rate.");
}
END_TEST

START_TEST(test_s3xml_error_not_error)
{
    struct s3_xml_error e;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_error(list_page, strlen(list_page), &e, &err),
                     WK_E_CORRUPT);
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_error("<html>", 6, &e, &err), WK_E_CORRUPT);
    ck_assert_str_eq(e.code, "");
}
END_TEST

START_TEST(test_s3xml_initiate)
{
    static const char body[] =
        XML_HDR "<InitiateMultipartUploadResult " S3_NS ">"
                "<Bucket>b</Bucket><Key>out/a.zip</Key>"
                "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIH"
                "VwbG9hZA</UploadId></InitiateMultipartUploadResult>";
    static const char none[] = "<InitiateMultipartUploadResult><Key>k</Key>"
                               "</InitiateMultipartUploadResult>";
    char *id = NULL;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_initiate(body, strlen(body), &id, &err),
                     WK_OK);
    ck_assert_str_eq(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIH"
                         "VwbG9hZA");
    free(id);
    ck_assert_int_eq(s3_xml_parse_initiate(none, strlen(none), &id, &err),
                     WK_E_CORRUPT);
    ck_assert_ptr_null(id);
    ck_assert_str_eq(err.msg,
                     "S3 reply to create multipart upload has no UploadId");
}
END_TEST

START_TEST(test_s3xml_complete)
{
    static const char body[] =
        XML_HDR "<CompleteMultipartUploadResult " S3_NS ">"
                "<Location>http://b.s3.amazonaws.com/out/a.zip</Location>"
                "<Bucket>b</Bucket><Key>out/a.zip</Key>"
                "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
                "</CompleteMultipartUploadResult>";
    char etag[S3_XML_ETAG_MAX];
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_complete(body, strlen(body), etag, &err),
                     WK_OK);
    ck_assert_str_eq(etag, "3858f62230ac3c915f300c664312c11f-9");
}
END_TEST

START_TEST(test_s3xml_complete_200_with_error)
{
    /* S3 may answer 200, send white space while it works, then fail */
    static const char body[] =
        XML_HDR "\n      \n      <Error><Code>InternalError</Code>"
                "<Message>We encountered an internal error. Please try again."
                "</Message></Error>";
    char etag[S3_XML_ETAG_MAX];
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_complete(body, strlen(body), etag, &err),
                     WK_E_HTTP);
    ck_assert_str_eq(err.s3_code, "InternalError");
    ck_assert_str_eq(err.msg, "S3 error InternalError: We encountered an "
                              "internal error. Please try again.");
    ck_assert(wk_err_transient(&err));
}
END_TEST

START_TEST(test_s3xml_delete_result)
{
    static const char body[] =
        XML_HDR "<DeleteResult " S3_NS ">"
                "<Deleted><Key>a</Key></Deleted>"
                "<Error><Key>p/sample2.txt</Key><Code>AccessDenied</Code>"
                "<Message>Access Denied</Message></Error>"
                "<Deleted><Key>b</Key><VersionId>v</VersionId></Deleted>"
                "<Error><Key>p/x &amp; y</Key><Code>InternalError</Code>"
                "<Message>oops</Message></Error>"
                "</DeleteResult>";
    static const char quiet[] = "<DeleteResult " S3_NS "/>";
    struct s3_xml_delete d;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_delete(body, strlen(body), &d, &err), WK_OK);
    ck_assert_uint_eq(d.n_deleted, 2);
    ck_assert_uint_eq(d.n_errors, 2);
    ck_assert_str_eq(d.errors[0].key, "p/sample2.txt");
    ck_assert_str_eq(d.errors[0].code, "AccessDenied");
    ck_assert_str_eq(d.errors[0].message, "Access Denied");
    ck_assert_str_eq(d.errors[1].key, "p/x & y");
    ck_assert_str_eq(d.errors[1].code, "InternalError");
    s3_xml_delete_release(&d);
    ck_assert_int_eq(s3_xml_parse_delete(quiet, strlen(quiet), &d, &err),
                     WK_OK);
    ck_assert_uint_eq(d.n_deleted, 0);
    ck_assert_uint_eq(d.n_errors, 0);
    s3_xml_delete_release(&d);
}
END_TEST

START_TEST(test_s3xml_uploads)
{
    static const char body[] = XML_HDR
        "<ListMultipartUploadsResult " S3_NS ">"
        "<Bucket>b</Bucket><KeyMarker></KeyMarker>"
        "<UploadIdMarker></UploadIdMarker>"
        "<NextKeyMarker>t/my+movie.m2ts</NextKeyMarker>"
        "<NextUploadIdMarker>YW55IGlkZWEgd2h5</NextUploadIdMarker>"
        "<EncodingType>url</EncodingType>"
        "<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
        "<Upload><Key>t/my%2Bdivisor</Key>"
        "<UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>"
        "<Initiator><ID>arn:aws:iam::111122223333:user/u</ID></Initiator>"
        "<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
        "<Upload><Key>t/my+movie.m2ts</Key><UploadId>YW55IGlkZWEgd2h5"
        "</UploadId></Upload>"
        "</ListMultipartUploadsResult>";
    struct s3_xml_uploads u;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_uploads(body, strlen(body), &u, &err), WK_OK);
    ck_assert_uint_eq(u.n_uploads, 2);
    ck_assert_str_eq(u.uploads[0].key, "t/my+divisor");
    ck_assert_str_eq(u.uploads[0].upload_id,
                     "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw");
    ck_assert_str_eq(u.uploads[1].key, "t/my movie.m2ts");
    ck_assert(u.is_truncated);
    ck_assert_str_eq(u.next_key_marker, "t/my movie.m2ts");
    ck_assert_str_eq(u.next_upload_id_marker, "YW55IGlkZWEgd2h5");
    s3_xml_uploads_release(&u);
}
END_TEST

/* The AWS documentation's ListParts example, and moto's root name. */
START_TEST(test_s3xml_parts)
{
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>example-bucket</Bucket><Key>example-object</Key>"
        "<UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA"
        "</UploadId><PartNumberMarker>1</PartNumberMarker>"
        "<NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts>"
        "<IsTruncated>true</IsTruncated>"
        "<Part><PartNumber>2</PartNumber>"
        "<LastModified>2010-11-10T20:48:34.000Z</LastModified>"
        "<ETag>\"7778aef83f66abc1fa1e8477f296d394\"</ETag>"
        "<Size>10485760</Size></Part>"
        "<Part><PartNumber>3</PartNumber>"
        "<LastModified>2010-11-10T20:48:33.000Z</LastModified>"
        "<ETag>&quot;aaaa18db4cc2f85cedef654fccc4a4x8&quot;</ETag>"
        "<Size>10485760</Size></Part></ListPartsResult>";
    static const char moto[] =
        "<ListPartsResponse><IsTruncated>false</IsTruncated>"
        "<Part><PartNumber>1</PartNumber><ETag>\"ab\"</ETag><Size>5</Size>"
        "</Part></ListPartsResponse>";
    static const char no_number[] =
        "<ListPartsResult><Part><ETag>x</ETag></Part></ListPartsResult>";
    static const char too_big[] =
        "<ListPartsResult><Part><PartNumber>10001</PartNumber><ETag>x</ETag>"
        "</Part></ListPartsResult>";
    struct s3_xml_parts l;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_parts(body, strlen(body), &l, &err), WK_OK);
    ck_assert_uint_eq(l.n_parts, 2);
    ck_assert_uint_eq(l.parts[0].number, 2);
    ck_assert_uint_eq(l.parts[0].size, 10485760);
    ck_assert_str_eq(l.parts[0].etag, "7778aef83f66abc1fa1e8477f296d394");
    ck_assert_str_eq(l.parts[1].etag, "aaaa18db4cc2f85cedef654fccc4a4x8");
    ck_assert(l.is_truncated);
    ck_assert_uint_eq(l.next_marker, 3);
    s3_xml_parts_release(&l);

    ck_assert_int_eq(s3_xml_parse_parts(moto, strlen(moto), &l, &err), WK_OK);
    ck_assert_uint_eq(l.n_parts, 1);
    ck_assert_str_eq(l.parts[0].etag, "ab");
    ck_assert(!l.is_truncated);
    s3_xml_parts_release(&l);

    /* a part without a number is corrupt, and so is one out of range */
    ck_assert_int_eq(s3_xml_parse_parts(no_number, strlen(no_number), &l, &err),
                     WK_E_CORRUPT);
    ck_assert_int_eq(s3_xml_parse_parts(too_big, strlen(too_big), &l, &err),
                     WK_E_CORRUPT);
}
END_TEST

/* ListVersionsResult as AWS documents it: versions and a delete marker,
 * url-encoded keys, the markers of the next page. */
START_TEST(test_s3xml_versions)
{
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bucket</Name><Prefix>my</Prefix><KeyMarker/>"
        "<VersionIdMarker/><MaxKeys>5</MaxKeys><EncodingType>url</EncodingType>"
        "<IsTruncated>true</IsTruncated>"
        "<NextKeyMarker>my%20third</NextKeyMarker>"
        "<NextVersionIdMarker>v3</NextVersionIdMarker>"
        "<Version><Key>my%20image.jpg</Key><VersionId>3/"
        "L4kqtJl40Nr8X8gdRQBpUMLUo"
        "</VersionId><IsLatest>true</IsLatest>"
        "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
        "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>"
        "<Size>434234</Size><StorageClass>STANDARD</StorageClass></Version>"
        "<DeleteMarker><Key>my-second-image.jpg</"
        "Key><VersionId>03jpff543dhffds434"
        "rfdsFDN943fdsFkdmqnh892</VersionId><IsLatest>true</IsLatest>"
        "<LastModified>2009-11-12T17:50:30.000Z</LastModified></DeleteMarker>"
        "<Version><Key>my-second-image.jpg</"
        "Key><VersionId>QUpfdndhfd8438MNFDN93"
        "jdnJFkdmqnh893</VersionId><IsLatest>false</IsLatest>"
        "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
        "<Size>166434</Size></Version>"
        "</ListVersionsResult>";
    struct s3_xml_versions v;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_parse_versions(body, strlen(body), &v, &err),
                     WK_OK);
    ck_assert_uint_eq(v.n_versions, 3);
    ck_assert_str_eq(v.versions[0].key, "my image.jpg");
    ck_assert_str_eq(v.versions[0].version_id, "3/L4kqtJl40Nr8X8gdRQBpUMLUo");
    ck_assert_str_eq(v.versions[0].etag, "fba9dede5f27731c9771645a39863328");
    ck_assert(v.versions[0].is_latest && !v.versions[0].delete_marker);
    ck_assert(v.versions[1].delete_marker && v.versions[1].is_latest);
    ck_assert_str_eq(v.versions[1].etag, "");
    ck_assert(!v.versions[2].is_latest && !v.versions[2].delete_marker);
    ck_assert_str_eq(v.versions[2].etag, "9b2cf535f27731c974343645a3985328");
    ck_assert(v.is_truncated);
    ck_assert_str_eq(v.next_key_marker, "my third");
    ck_assert_str_eq(v.next_version_id_marker, "v3");
    s3_xml_versions_release(&v);

    /* an entry without its VersionId is refused */
    static const char bad[] =
        "<ListVersionsResult><Version><Key>k</Key><ETag>\"e\"</ETag>"
        "</Version></ListVersionsResult>";
    ck_assert_int_eq(s3_xml_parse_versions(bad, strlen(bad), &v, &err),
                     WK_E_CORRUPT);
}
END_TEST

START_TEST(test_s3xml_escape)
{
    struct wk_buf b;
    struct wk_err err;
    static const char key[] = "a&b<c>\"d'e\tf\ng\rh \xc3\xbc";

    wk_err_clear(&err);
    wk_buf_init(&b, 1024);
    ck_assert_int_eq(s3_xml_escape(key, strlen(key), &b, &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b), "a&amp;b&lt;c&gt;&quot;d&apos;e&#9;f"
                                      "&#10;g&#13;h \xc3\xbc");
    wk_buf_reset(&b);
    ck_assert_int_eq(s3_xml_escape("x\x01y", 3, &b, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg,
                     "control character 0x01 cannot be sent in S3 XML");
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_s3xml_url_decode)
{
    char ok[] = "a%2fb+c%7E%e2%82%ac";
    char bad[] = "a%2";
    char nul[] = "a%00b";
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_url_decode(ok, &err), WK_OK);
    ck_assert_str_eq(ok, "a/b c~\xe2\x82\xac");
    ck_assert_int_eq(s3_xml_url_decode(bad, &err), WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "bad URL escape in S3 listing value");
    wk_err_clear(&err);
    ck_assert_int_eq(s3_xml_url_decode(nul, &err), WK_E_CORRUPT);
}
END_TEST

Suite *s3xml_suite(void)
{
    Suite *s = suite_create("s3xml");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_s3xml_list_page);
    tcase_add_test(tc, test_s3xml_versions);
    tcase_add_test(tc, test_s3xml_list_last_page);
    tcase_add_test(tc, test_s3xml_list_url_encoded);
    tcase_add_test(tc, test_s3xml_list_entities);
    tcase_add_test(tc, test_s3xml_list_error_document);
    tcase_add_test(tc, test_s3xml_truncated_refused);
    tcase_add_test(tc, test_s3xml_malformed_refused);
    tcase_add_test(tc, test_s3xml_empty_body_refused);
    tcase_add_test(tc, test_s3xml_wrong_root_refused);
    tcase_add_test(tc, test_s3xml_bad_values_refused);
    tcase_add_test(tc, test_s3xml_huge_value_refused);
    tcase_add_test(tc, test_s3xml_body_over_cap_refused);
    tcase_add_test(tc, test_s3xml_depth_refused);
    tcase_add_test(tc, test_s3xml_doctype_refused);
    tcase_add_test(tc, test_s3xml_error_document);
    tcase_add_test(tc, test_s3xml_error_not_error);
    tcase_add_test(tc, test_s3xml_initiate);
    tcase_add_test(tc, test_s3xml_complete);
    tcase_add_test(tc, test_s3xml_complete_200_with_error);
    tcase_add_test(tc, test_s3xml_delete_result);
    tcase_add_test(tc, test_s3xml_uploads);
    tcase_add_test(tc, test_s3xml_parts);
    tcase_add_test(tc, test_s3xml_escape);
    tcase_add_test(tc, test_s3xml_url_decode);
    suite_add_tcase(s, tc);
    return s;
}
