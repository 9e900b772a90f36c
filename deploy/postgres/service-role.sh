#!/bin/sh
# Init script of the PostgreSQL image (mounted into /docker-entrypoint-initdb.d by compose.yaml):
# runs once, on the first start of an empty data volume, as the superuser POSTGRES_USER, while
# the image's temporary server listens on the Unix socket only.
#
# Creates the service's own role SERVICE_ROLE (password SERVICE_ROLE_PASSWORD): it may log in,
# is no superuser, creates no roles and no databases, and owns the database POSTGRES_DB, so that
# it may run its migrations, vacuum and analyse its tables (the outbox does) and do its normal
# work, and nothing else. Only the owner and superusers may connect to the database.
#
# The entrypoint sources this file when it is not executable: it must not change shell options
# or exit unless it fails.

: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${SERVICE_ROLE:?set SERVICE_ROLE to the service role name}"
: "${SERVICE_ROLE_PASSWORD:?set SERVICE_ROLE_PASSWORD to the service role password}"

# psql quotes the variables itself (:"name" as an identifier, :'name' as a literal), so a name
# or password with quotes cannot change the statements.
psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set role="$SERVICE_ROLE" --set password="$SERVICE_ROLE_PASSWORD" \
    --set database="$POSTGRES_DB" <<'SQL' || exit 1
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'password';
ALTER DATABASE :"database" OWNER TO :"role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
SQL
echo "service-role.sh: role $SERVICE_ROLE owns database $POSTGRES_DB"
