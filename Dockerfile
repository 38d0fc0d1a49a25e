# portcullis container image: multi-stage (build with dev dependencies, run without), non-root,
# config read from /etc/portcullis/gateway.yaml. Secrets come from the environment or mounted files,
# never from the image.
#
# Build: docker build -t portcullis .
# Run, with the shipped gateway.yaml (it listens on loopback and reaches its backends on loopback, so the
# container shares the host's network, as a sidecar would; every secret it names is passed):
#   mkdir -p config && cp gateway.yaml config/
#   docker run --rm --network host -v "$PWD/config:/etc/portcullis:ro" \
#     -e LLORCH_API_TOKEN -e LLORCH_API_TOKEN_NEXT -e COORDINATOR_API_KEY \
#     -e DISTRIBUTED_WORKER_SECRET -e WORKER_MASTER_KEY portcullis
# Mount the config's DIRECTORY, not the file: editors and ConfigMaps replace a file by rename, which a
# single-file bind mount never shows the container (it keeps the old inode). With published ports
# instead of the host network, the config must listen on 0.0.0.0 (server.listen and admin.listen).

# ---- build: install everything, compile TypeScript, then drop dev dependencies ----
FROM node:20-slim AS build
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
# Scripts are skipped here (`prepare` would build before the sources are copied); the build runs below.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
# Only the gateway's sources are compiled (tsconfig.json also includes test/ and bench/, not copied here).
# light-my-request (fastify's inject(), for tests: fastify requires it only inside inject()) pulls cookie@2,
# which requires Node >= 22; the gateway loads neither, so neither ships in this Node 20 image.
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts \
 && rm -rf node_modules/light-my-request node_modules/cookie

# ---- runtime: only the compiled gateway and production dependencies ----
FROM node:20-slim AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="Authenticating reverse proxy for service-to-service HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:20-slim"
ENV NODE_ENV=production \
    PORTCULLIS_CONFIG=/etc/portcullis/gateway.yaml
RUN groupadd --system --gid 10001 portcullis \
 && useradd --system --uid 10001 --gid portcullis --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin portcullis \
 && mkdir -p /etc/portcullis
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# Numeric so that Kubernetes `runAsNonRoot` can check it.
USER 10001:10001
# 8080: the proxy (server.listen); 9901: the admin listener (/healthz /readyz /metrics /jwks.json).
EXPOSE 8080 9901
# Liveness with node itself (the image has no curl): the admin /healthz at the config's admin.listen, or,
# without `admin:`, a connection to server.listen — read from the mounted config, so no port is hard-coded.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/dist/src/cli/healthcheck.js"]
# SIGTERM drains in-flight requests for server.shutdownGrace, then exits 0; SIGHUP reloads the config.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve"]
