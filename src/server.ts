import { exitOnStartupError, serve } from './runtime.js';

serve().catch(exitOnStartupError);
