# shoal's container image: `docker build -t shoal .` (`npm run test:image` builds and runs it with podman)
# Stage 1 compiles TypeScript with every dependency; stage 2 keeps production dependencies only.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# package.json overrides webrtc-polyfill with this local stub (shoal uses no WebRTC).
COPY src/stubs ./src/stubs
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm links the stub into node_modules (a symlink to ../src/stubs/...); the runtime stage takes
# node_modules alone, so the link becomes a copy, whatever npm version made it.
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/webrtc-polyfill && cp -R src/stubs/webrtc-polyfill node_modules/webrtc-polyfill

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY proto ./proto
RUN ln -s /app/dist/src/main.js /usr/local/bin/shoal && chmod +x /app/dist/src/main.js
# Non-root by default (shoal status, metainfo). The chart runs the DaemonSet as root: containerd's
# socket and content store belong to root on the node.
USER node
EXPOSE 5000 5001 5001/udp 9090
ENTRYPOINT ["shoal"]
CMD ["--help"]
