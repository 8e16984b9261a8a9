import { defineHttpsSuite } from './https-suite.js';

defineHttpsSuite('haproxy');
