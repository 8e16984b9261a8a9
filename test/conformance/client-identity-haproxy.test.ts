import { defineClientIdentitySuite } from './client-identity-suite.js';

defineClientIdentitySuite('haproxy');
