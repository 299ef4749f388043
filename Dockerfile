# syntax=docker/dockerfile:1
# Multi-stage: build with dev dependencies, run with production ones only, as a non-root user.
# Node 24 is the current LTS line (the code also runs on Node 20, which the test suite covers).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The web console is an npm workspace: its manifest must be there for npm ci.
COPY console/package.json ./console/
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
# The server and the console (console/dist, served at /); the console's packages are build-time only.
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    CDSA_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data
WORKDIR /app
# A fixed uid/gid (10001), so that bind-mounted files (the audit signing key secret) can be given to it on the host.
RUN groupadd --system --gid 10001 cdsa && useradd --system --uid 10001 --gid cdsa --home-dir /app --shell /usr/sbin/nologin cdsa \
    && mkdir -p /data /audit && chown cdsa:cdsa /data /audit
COPY --from=build --chown=cdsa:cdsa /app/node_modules ./node_modules
COPY --from=build --chown=cdsa:cdsa /app/dist ./dist
COPY --from=build --chown=cdsa:cdsa /app/console/dist ./console/dist
COPY --chown=cdsa:cdsa package.json ./
COPY --chown=cdsa:cdsa bin ./bin
# Migrations and post-migration SQL are read at start-up from src/db.
COPY --chown=cdsa:cdsa src/db/migrations ./src/db/migrations
COPY --chown=cdsa:cdsa src/db/sql ./src/db/sql
COPY --chown=cdsa:cdsa src/data ./src/data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/health/ready').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
# See the README (production deployment) for why the memory reducer is off.
ENTRYPOINT ["node", "--no-memory-reducer", "bin/cdsa.js"]
CMD ["serve"]
