# Sourced by the mysql image's entrypoint on the first start (an empty data directory), after it
# has created MYSQL_DATABASE and MYSQL_USER: Dagster's own storage gets a database of its own,
# so its history can be pruned without touching the project's tables.
docker_process_sql --database=mysql <<-EOSQL
	CREATE DATABASE IF NOT EXISTS \`${DAGSTER_MYSQL_DATABASE}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
	GRANT ALL PRIVILEGES ON \`${DAGSTER_MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';
EOSQL
