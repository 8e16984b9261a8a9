import { defineClientIdentitySuite } from './client-identity-suite.js';

defineClientIdentitySuite('builtin');
