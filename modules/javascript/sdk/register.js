// `node --import ./cfhost/register.js --test`: lets tests import a module that imports
// `cfhost:callflow/...` (see hooks.js).
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
