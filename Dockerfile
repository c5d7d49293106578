# inferplane image: the control plane (`serve`) and the vLLM simulator (`sim-vllm`), non-root, no dev tooling.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# jemalloc instead of glibc's malloc: glibc keeps the memory thousands of closed HTTP/2 connections freed (about
# 60 KiB each, trapped under live allocations), jemalloc returns it within a second (BENCHMARKS.md, soak).
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*
ENV LD_PRELOAD=libjemalloc.so.2
ENV MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY examples ./examples
COPY proto ./proto
# uid 1000 ("node"), as k8s/base/deployment.yaml's runAsUser expects; nothing is written at run time.
USER node
EXPOSE 18000 19000
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["serve"]
