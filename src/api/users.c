/*
 * Users and sessions: POST /api/users (register), POST /api/auth (log in) and
 * POST /api/auth/logout. Password hashing and verification run on the password pool; each
 * handler continues on its worker thread when the pool answers.
 */
#include "api/api_internal.h"

#include <string.h>

#include "api/body.h"

#define ERROR_BODY(message) "{\"errMsg\":\"" message "\"}"
#define LOGIN_ERROR(kind, message) "{\"kind\":\"" kind "\",\"errMsg\":\"" message "\"}"

/* ---- register ---- */

typedef struct register_request {
    api_request_t *r;
    h2o_iovec_t username, password;
    sk_user_kind_t kind;
    sk_store_user_find_t find;
    sk_password_job_t hash;
    sk_store_user_register_t insert;
} register_request_t;

static int is_unicode_space(const unsigned char *bytes, size_t left, size_t *width)
{
    /* U+0085, U+00A0 (C2 85, C2 A0); U+1680 (E1 9A 80); U+2000-200A, 2028, 2029, 202F,
     * 205F (E2 80 xx / E2 81 9F); U+3000 (E3 80 80); U+FEFF (EF BB BF). */
    if (left >= 2 && bytes[0] == 0xC2 && (bytes[1] == 0x85 || bytes[1] == 0xA0)) {
        *width = 2;
        return 1;
    }
    if (left < 3)
        return 0;
    *width = 3;
    if (bytes[0] == 0xE1 && bytes[1] == 0x9A && bytes[2] == 0x80)
        return 1;
    if (bytes[0] == 0xE2 && bytes[1] == 0x80 &&
        (bytes[2] <= 0x8A || bytes[2] == 0xA8 || bytes[2] == 0xA9 || bytes[2] == 0xAF))
        return 1;
    if (bytes[0] == 0xE2 && bytes[1] == 0x81 && bytes[2] == 0x9F)
        return 1;
    if (bytes[0] == 0xE3 && bytes[1] == 0x80 && bytes[2] == 0x80)
        return 1;
    return bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF;
}

/* A user name: at most 64 bytes, no '/', no whitespace, no control character (C0, DEL,
 * C1). The body parser already refused invalid UTF-8. */
static int user_name_is_valid(h2o_iovec_t name)
{
    if (name.len > SK_STORE_MAX_NAME)
        return 0;
    const unsigned char *bytes = (const unsigned char *)name.base;
    for (size_t i = 0; i < name.len; ++i) {
        size_t width;
        if (bytes[i] <= 0x20 || bytes[i] == 0x7F || bytes[i] == '/')
            return 0;
        if (bytes[i] == 0xC2 && i + 1 < name.len && bytes[i + 1] >= 0x80 && bytes[i + 1] <= 0x9F)
            return 0;
        if (bytes[i] >= 0xC2 && is_unicode_space(bytes + i, name.len - i, &width))
            return 0;
    }
    return 1;
}

static void on_registered(sk_store_op_t *op)
{
    register_request_t *ctx = op->data;
    sodium_memzero(ctx->hash.hash, sizeof(ctx->hash.hash));
    switch (op->result) {
    case SK_STORE_OK:
        sk_api__send_json(ctx->r, 201, h2o_iovec_init(H2O_STRLIT(ERROR_BODY(""))));
        break;
    case SK_STORE_DUPLICATE:
        sk_api__send_error(ctx->r, 400, "Insert user failed. Maybe user name duplicates.");
        break;
    default:
        sk_api__send_unavailable(ctx->r);
        break;
    }
}

static void on_hashed(sk_password_job_t *job)
{
    register_request_t *ctx = job->data;
    sodium_memzero(ctx->password.base, ctx->password.len);
    if (job->status != 0) {
        sk_api__send_unavailable(ctx->r);
        return;
    }
    ctx->insert.op.on_done = on_registered;
    ctx->insert.op.data = ctx;
    ctx->insert.op.pool = &ctx->r->req->pool;
    ctx->insert.username = ctx->username;
    ctx->insert.kind = ctx->kind;
    ctx->insert.password_hash = job->hash;
    sk_store_user_register(ctx->r->thread->api->store, ctx->r->thread->store, &ctx->insert);
}

static void on_register_lookup(sk_store_op_t *op)
{
    register_request_t *ctx = op->data;
    api_request_t *r = ctx->r;
    if (op->result == SK_STORE_OK) {
        sk_api__send_error(r, 400, "Insert user failed. Maybe user name duplicates.");
        return;
    }
    if (ctx->password.len > SK_PASSWORD_MAX) {
        sk_api__send_error(r, 400, "Password too long.");
        return;
    }
    ctx->hash.kind = SK_PASSWORD_HASH;
    ctx->hash.password = ctx->password.base;
    ctx->hash.password_len = ctx->password.len;
    ctx->hash.on_done = on_hashed;
    ctx->hash.data = ctx;
    sk_password_submit(r->thread->api->passwords, r->thread->password_receiver, &ctx->hash);
}

void sk_api__handle_register(api_request_t *r)
{
    json_t *body = sk_api__parse_body(r, 0);
    if (body == NULL)
        return;
    h2o_iovec_t username, password, kind;
    if (sk_api__string_field(r, body, "username", &username) != 0 ||
        sk_api__string_field(r, body, "password", &password) != 0 ||
        sk_api__string_field(r, body, "kind", &kind) != 0)
        goto done;
    if (username.len == 0) {
        sk_api__send_error(r, 400, "User name too short.");
        goto done;
    }
    if (password.len == 0) {
        sk_api__send_error(r, 400, "Password too short.");
        goto done;
    }
    if (kind.len == 0) {
        sk_api__send_error(r, 400, "Empty field of kind.");
        goto done;
    }
    sk_user_kind_t user_kind;
    if (h2o_memis(kind.base, kind.len, H2O_STRLIT("customer"))) {
        user_kind = SK_USER_CUSTOMER;
    } else if (h2o_memis(kind.base, kind.len, H2O_STRLIT("saler"))) {
        user_kind = SK_USER_SELLER;
    } else {
        json_t *message =
            json_pack("{s:s+#}", "errMsg", "Unexpected value of kind, ", kind.base, (int)kind.len);
        if (message != NULL)
            sk_api__send_value(r, 400, message);
        else
            sk_api__send_unavailable(r);
        goto done;
    }
    if (!user_name_is_valid(username)) {
        sk_api__send_error(r, 400, "Invalid user name.");
        goto done;
    }

    register_request_t *ctx = h2o_mem_alloc_pool(&r->req->pool, sizeof(*ctx));
    memset(ctx, 0, sizeof(*ctx));
    ctx->r = r;
    ctx->kind = user_kind;
    ctx->username = h2o_strdup(&r->req->pool, username.base, username.len);
    ctx->password = h2o_strdup(&r->req->pool, password.base, password.len);
    json_decref(body);
    body = NULL;
    /* A taken name is refused before the slow hash is spent on it. */
    ctx->find.op.on_done = on_register_lookup;
    ctx->find.op.data = ctx;
    ctx->find.op.pool = &r->req->pool;
    ctx->find.username = ctx->username;
    sk_store_user_find(r->thread->api->store, r->thread->store, &ctx->find);
done:
    json_decref(body);
}

/* ---- log in ---- */

typedef struct login_request {
    api_request_t *r;
    h2o_iovec_t username, password;
    sk_store_user_find_t find;
    sk_password_job_t verify;
} login_request_t;

static const char *kind_name(sk_user_kind_t kind)
{
    return kind == SK_USER_SELLER ? "saler" : "customer";
}

static void send_token(login_request_t *ctx)
{
    api_request_t *r = ctx->r;
    /* The token is bound to this deployment and this user (see token.h). */
    const char *deployment_id = sk_store_deployment_id(r->thread->api->store);
    if (deployment_id == NULL) {
        sk_api__send_unavailable(r);
        return;
    }
    sk_jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    memcpy(claims.username, ctx->username.base, ctx->username.len);
    strcpy(claims.kind, kind_name(ctx->find.kind));
    memcpy(claims.dep, deployment_id, SK_JWT_DEP_LEN);
    claims.uid = ctx->find.id;
    claims.iat = claims.nbf = sk_api__unix_now(r);
    claims.exp = claims.iat + r->thread->api->config.token_ttl;
    sk_jwt_new_jti(&claims);
    char token[SK_JWT_MAX_TOKEN];
    int token_len =
        sk_jwt_sign(r->thread->api->config.jwt_secret, r->thread->api->config.jwt_secret_len,
                    &claims, token, sizeof(token));
    if (token_len < 0) {
        sk_api__send_unavailable(r);
        return;
    }
    h2o_iovec_t header = h2o_strdup(&r->req->pool, token, (size_t)token_len);
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_AUTHORIZATION, NULL, header.base,
                   header.len);
    char body[SK_JWT_MAX_TOKEN + 64];
    int body_len =
        snprintf(body, sizeof(body), "{\"kind\":\"%s\",\"errMsg\":\"\",\"token\":\"%s\"}",
                 claims.kind, token);
    sk_api__send_json(r, 200, h2o_iovec_init(body, (size_t)body_len));
}

static void send_mismatch(login_request_t *ctx)
{
    if (ctx->find.kind == SK_USER_SELLER)
        sk_api__send_json(ctx->r, 401,
                          h2o_iovec_init(H2O_STRLIT(LOGIN_ERROR("saler", "Password mismatched."))));
    else
        sk_api__send_json(
            ctx->r, 401,
            h2o_iovec_init(H2O_STRLIT(LOGIN_ERROR("customer", "Password mismatched."))));
}

static void on_verified(sk_password_job_t *job)
{
    login_request_t *ctx = job->data;
    if (job->status == 0) {
        sk_password_cache_add(ctx->r->thread->api->passwords, ctx->username.base, ctx->username.len,
                              ctx->password.base, ctx->password.len, ctx->find.password_hash);
        send_token(ctx);
    } else {
        send_mismatch(ctx);
    }
    sodium_memzero(ctx->password.base, ctx->password.len);
}

static void on_login_lookup(sk_store_op_t *op)
{
    login_request_t *ctx = op->data;
    api_request_t *r = ctx->r;
    if (op->result == SK_STORE_UNAVAILABLE) {
        sk_api__send_unavailable(r);
        return;
    }
    if (op->result != SK_STORE_OK) {
        sk_api__send_json(r, 401,
                          h2o_iovec_init(H2O_STRLIT(LOGIN_ERROR("", "No such queryUser."))));
        return;
    }
    /* No password this long was ever accepted: do not spend the hash on it. */
    if (ctx->password.len > SK_PASSWORD_MAX) {
        send_mismatch(ctx);
        return;
    }
    sk_password_pool_t *passwords = r->thread->api->passwords;
    if (sk_password_cache_hit(passwords, ctx->username.base, ctx->username.len, ctx->password.base,
                              ctx->password.len, ctx->find.password_hash)) {
        send_token(ctx);
        return;
    }
    ctx->verify.kind = SK_PASSWORD_VERIFY;
    ctx->verify.password = ctx->password.base;
    ctx->verify.password_len = ctx->password.len;
    ctx->verify.stored_hash = ctx->find.password_hash;
    ctx->verify.on_done = on_verified;
    ctx->verify.data = ctx;
    sk_password_submit(passwords, r->thread->password_receiver, &ctx->verify);
}

void sk_api__handle_login(api_request_t *r)
{
    json_t *body = sk_api__parse_body(r, 1);
    if (body == NULL)
        return;
    json_t *username = json_object_get(body, "username");
    json_t *password = json_object_get(body, "password");
    if ((username != NULL && !json_is_string(username) && !json_is_null(username)) ||
        (password != NULL && !json_is_string(password) && !json_is_null(password))) {
        json_decref(body);
        sk_api__send_json(r, 400,
                          h2o_iovec_init(H2O_STRLIT(LOGIN_ERROR("", "Only receive JSON format."))));
        return;
    }
    login_request_t *ctx = h2o_mem_alloc_pool(&r->req->pool, sizeof(*ctx));
    memset(ctx, 0, sizeof(*ctx));
    ctx->r = r;
    ctx->username =
        json_is_string(username)
            ? h2o_strdup(&r->req->pool, json_string_value(username), json_string_length(username))
            : h2o_iovec_init("", 0);
    ctx->password =
        json_is_string(password)
            ? h2o_strdup(&r->req->pool, json_string_value(password), json_string_length(password))
            : h2o_iovec_init("", 0);
    json_decref(body);
    if (ctx->username.len == 0 || ctx->username.len > SK_STORE_MAX_NAME) {
        sk_api__send_json(r, 401,
                          h2o_iovec_init(H2O_STRLIT(LOGIN_ERROR("", "No such queryUser."))));
        return;
    }
    ctx->find.op.on_done = on_login_lookup;
    ctx->find.op.data = ctx;
    ctx->find.op.pool = &r->req->pool;
    ctx->find.username = ctx->username;
    sk_store_user_find(r->thread->api->store, r->thread->store, &ctx->find);
}

/* ---- log out ---- */

static void on_revoked(sk_store_op_t *op)
{
    api_request_t *r = op->data;
    if (op->result == SK_STORE_OK)
        sk_api__send_json(r, 200, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("log out."))));
    else
        sk_api__send_unavailable(r);
}

void sk_api__handle_logout(api_request_t *r)
{
    h2o_req_t *req = r->req;
    ssize_t index = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    const sk_jwt_claims_t *claims;
    sk_token_status_t status =
        index < 0
            ? SK_TOKEN_MISSING
            : sk_token_check(r->thread->tokens, req->headers.entries[index].value.base,
                             req->headers.entries[index].value.len, sk_api__unix_now(r), &claims);
    if (status == SK_TOKEN_UNAVAILABLE) {
        /* The token may be good: the client should retry, not believe it logged out. */
        sk_api__send_unavailable(r);
        return;
    }
    if (status != SK_TOKEN_OK) {
        /* Nothing to revoke: the original answered every logout this way. */
        sk_api__send_json(r, 200, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("log out."))));
        return;
    }
    sk_store_revoke_t *op = h2o_mem_alloc_pool(&req->pool, sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->op.on_done = on_revoked;
    op->op.data = r;
    op->op.pool = &req->pool;
    op->jti = h2o_strdup(&req->pool, claims->jti, strlen(claims->jti)).base;
    op->expires_at = claims->exp;
    sk_store_revoke(r->thread->api->store, r->thread->store, op);
}
