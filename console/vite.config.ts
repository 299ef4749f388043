import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The console is served by the CDSA process under a CSP without inline script or eval: no inline module-preload
// polyfill, assets under /assets with content hashes (cached for good), index.html never cached (see src/http/console.ts).
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8000' } },
});
