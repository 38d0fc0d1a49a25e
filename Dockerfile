# portcullis container image: multi-stage (build with dev dependencies, run without), non-root,
# config mounted at /etc/portcullis/gateway.yaml. Secrets come from the environment or mounted files,
# never from the image. Build: docker build -t portcullis .
# Run:   docker run -v $PWD/gateway.yaml:/etc/portcullis/gateway.yaml:ro -e LLORCH_API_TOKEN=... -p 8080:8080 -p 9901:9901 portcullis
# The mounted config must listen on 0.0.0.0 (server.listen and admin.listen) to be reachable from outside.

# ---- build: install everything, compile TypeScript, then drop dev dependencies ----
FROM node:20-slim AS build
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
# Scripts are skipped here (`prepare` would build before the sources are copied); the build runs below.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

# ---- runtime: only the compiled gateway and production dependencies ----
FROM node:20-slim AS runtime
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
# Liveness through the admin listener, with node itself (the image has no curl).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get('http://127.0.0.1:9901/healthz',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
# SIGTERM drains in-flight requests for server.shutdownGrace, then exits 0; SIGHUP reloads the config.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve"]
