# Flow Proxy for real clusters: Node 24 (the current LTS) with Debian's HAProxy (the production data plane).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENV STATE_DIR=/cfg CERTS_DIR=/certs
VOLUME /cfg
EXPOSE 80 443 8080
# Healthy once the data plane serves and the replica caught up with its peers (docs/swarm.md).
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s CMD ["node", "/app/dist/cli.js", "status", "--timeout", "3"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
