# Stand-ins for the third-party images of the compose files (mysql, redis, nginx) where no image
# registry can be reached: the same programs from Debian's packages, on the local base image
# (scripts/build_base_image.sh). Only the tests use them (deploy/test/compose.*.yml). Build
# context: this directory.
#
#   docker build --network host -f deploy/test/services.Dockerfile --target mariadb \
#     --build-arg BASE_IMAGE=animehot-base:bookworm -t animehot-test-mariadb:local deploy/test
ARG BASE_IMAGE=animehot-base:bookworm

# The mysql:8.0 image's contract as the compose files use it: MYSQL_ROOT_PASSWORD, MYSQL_DATABASE,
# MYSQL_USER, MYSQL_PASSWORD on the first start, /docker-entrypoint-initdb.d/*.sh sourced with
# docker_process_sql, arguments starting with "-" passed to the server, mysqladmin/mysqldump.
FROM ${BASE_IMAGE} AS mariadb
RUN apt-get update \
 && apt-get install -y --no-install-recommends mariadb-server mariadb-client \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && mkdir -p /run/mysqld /docker-entrypoint-initdb.d && chown mysql:mysql /run/mysqld /var/lib/mysql
COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/mysql
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["mariadbd"]

# redis:7.4-alpine as the compose files use it: redis-server with arguments, data in /data.
# redis-cli goes to the port in REDIS_PORT (host networking moves the port off 6379; the
# manual's `docker compose exec redis redis-cli …` then still reaches this server).
FROM ${BASE_IMAGE} AS redis
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
COPY redis-cli /usr/local/bin/redis-cli
WORKDIR /data
VOLUME /data
USER redis
CMD ["redis-server"]

# nginx:1.27-alpine as docker-compose.prod.yml uses it: /etc/nginx/templates/*.template rendered
# into /etc/nginx/conf.d/ with the environment's variables (the image's envsubst step).
FROM ${BASE_IMAGE} AS nginx
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light gettext-base \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
