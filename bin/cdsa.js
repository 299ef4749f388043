#!/usr/bin/env node
// The compiled CLI; `npm ci` builds it (prepare script).
import '../dist/cli/index.js';
