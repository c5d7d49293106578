# inferplane image: the control plane (`serve`) and the vLLM simulator (`sim-vllm`), non-root, no dev tooling.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
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
