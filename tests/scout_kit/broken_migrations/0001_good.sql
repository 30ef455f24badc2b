CREATE TABLE fine (id integer);
