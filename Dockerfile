# KeyPin images, from one Dockerfile (see docs/deployment.md):
#
#   default (last stage, `runtime`): the gateway/worker image. Node 20,
#       production dependencies only, non-root, the built console included
#       (the gateway serves it too), HEALTHCHECK on /health.
#           docker build -t keypin .
#   target `front`: the official nginx image plus the built console at
#       /usr/share/keypin/admin-ui and nginx/keypin.conf as nginx.conf.
#           docker build --target front -t keypin-front .
#
# docker-compose.yml builds both. Plain Dockerfile syntax (no BuildKit-only
# features), so Debian's docker-compose v1 and the classic builder work too.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG NGINX_IMAGE=nginx:1.28-bookworm

# ---------------------------------------------------------------- build
# Every dependency (dev included) and the Nx build of all projects:
# libs/shared/dist, dist/gateway (gateway + migrations), apps/admin-ui/dist.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV NX_DAEMON=false NX_NO_CLOUD=true CI=true
# Manifests first: the dependency layer is rebuilt only when they change.
COPY package.json package-lock.json .npmrc ./
COPY apps/gateway/package.json apps/gateway/
COPY apps/admin-ui/package.json apps/admin-ui/
COPY libs/shared/package.json libs/shared/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx nx run-many -t build --output-style=static \
 && test -f dist/gateway/apps/gateway/src/main.js \
 && test -f libs/shared/dist/index.js \
 && test -f apps/admin-ui/dist/index.html

# ----------------------------------------------------------------- deps
# Production dependencies of the gateway workspace only (the console's React
# and MUI are bundled into its static files and not needed at run time).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY apps/gateway/package.json apps/gateway/
COPY apps/admin-ui/package.json apps/admin-ui/
COPY libs/shared/package.json libs/shared/
RUN npm ci --omit=dev --workspace=@keypin/gateway --no-audit --no-fund \
 && npm cache clean --force

# ---------------------------------------------------------------- front
# nginx in front of the gateways (docker-compose service `nginx`). The
# console is copied in from the same build as the gateway image, so the two
# always match; docker-compose.yml also mounts nginx/keypin.conf over the
# baked-in copy, so configuration edits need no rebuild.
FROM ${NGINX_IMAGE} AS front
COPY --from=build /app/apps/admin-ui/dist/ /usr/share/keypin/admin-ui/
COPY nginx/keypin.conf /etc/nginx/nginx.conf

# -------------------------------------------------------------- runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    WORKERS=auto \
    ADMIN_UI_DIR=/app/apps/admin-ui/dist \
    SPOOL_DIR=/app/spool
WORKDIR /app
RUN groupadd --system --gid 10001 keypin \
 && useradd --system --uid 10001 --gid keypin --home-dir /app --no-create-home --shell /usr/sbin/nologin keypin
# node_modules (with the @keypin/* workspace links) and the manifests.
COPY --from=deps /app/ ./
COPY --from=build /app/libs/shared/dist/ libs/shared/dist/
COPY --from=build /app/dist/gateway/ dist/gateway/
COPY --from=build /app/apps/admin-ui/dist/ apps/admin-ui/dist/
# The only place the process writes: the local intercept spool (last resort
# when neither Redis nor PostgreSQL takes a batch). One volume per container.
RUN mkdir -p /app/spool && chown keypin:keypin /app/spool
VOLUME ["/app/spool"]
USER keypin
EXPOSE 8080
# ROLE=worker serves no HTTP: docker-compose.yml disables this check there.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/gateway/apps/gateway/src/main.js"]
